// A line chart in SVG, written here (no library): one series, gaps where a value is null,
// labelled axes and a text alternative for screen readers. Width follows its container.
const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// points: [{t (seconds), v (number|null)}]; fmt: value → label; max: fixed y max or null.
export function lineChart(points, { title, fmt = (v) => String(v), max = null, width = 320,
  height = 140 } = {}) {
  const pad = { l: 44, r: 8, t: 8, b: 22 };
  const vals = points.map((p) => p.v).filter((v) => v !== null && v !== undefined);
  const top = max ?? Math.max(1, ...vals);
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    class: "chart", preserveAspectRatio: "none" });
  const last = vals.length ? fmt(vals[vals.length - 1]) : "no data";
  svg.append(node("title", {}, `${title}: ${vals.length} points, latest ${last}`));
  const x = (i) => pad.l + (points.length < 2 ? 0 : i * (width - pad.l - pad.r) / (points.length - 1));
  const y = (v) => pad.t + (1 - v / top) * (height - pad.t - pad.b);
  for (const f of [0, 0.5, 1]) {
    svg.append(node("line", { x1: pad.l, x2: width - pad.r, y1: y(top * f), y2: y(top * f), class: "grid" }));
    svg.append(node("text", { x: pad.l - 4, y: y(top * f) + 4, "text-anchor": "end", class: "axis" }, fmt(top * f)));
  }
  if (points.length) {
    const tl = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    svg.append(node("text", { x: pad.l, y: height - 6, class: "axis" }, tl(points[0].t)));
    svg.append(node("text", { x: width - pad.r, y: height - 6, "text-anchor": "end", class: "axis" },
      tl(points[points.length - 1].t)));
  }
  let d = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p.v === null || p.v === undefined) { pen = false; return; }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p.v).toFixed(1)} `;
    pen = true;
  });
  if (d) svg.append(node("path", { d, class: "line" }));
  points.forEach((p, i) => {
    if (p.v === null || p.v === undefined) return;
    const c = node("circle", { cx: x(i), cy: y(p.v), r: 2.5, class: "dot" });
    c.append(node("title", {}, `${new Date(p.t * 1000).toLocaleTimeString()}: ${fmt(p.v)}`));
    svg.append(c);
  });
  svg.dataset.points = String(vals.length);
  return svg;
}
