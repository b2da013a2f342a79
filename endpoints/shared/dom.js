// Small DOM helpers shared by the pages (desk, remote worker page, floor monitor).
export const $ = (id) => document.getElementById(id);

export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// A duration in words a person reads at a glance.
export function dur(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, s);
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

export function setConn(kind, text) {
  const c = $("conn");
  c.dataset.state = kind;
  c.textContent = text;
}

// Narrow screens show table rows as cards: each cell carries its column's name (CSS
// `td::before { content: attr(data-label) }` under a media query), so nothing scrolls sideways.
export function labelCells(tbody) {
  const table = tbody.closest("table");
  const heads = table ? [...table.querySelectorAll("thead th")].map((th) => th.textContent) : [];
  for (const tr of tbody.rows) {
    [...tr.cells].forEach((cell, i) => {
      if (heads[i] && !cell.dataset.label) cell.dataset.label = heads[i];
    });
  }
}
