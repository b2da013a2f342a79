// Live routing status for supervisors: a WebSocket for changes, REST for snapshots.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token")
  || sessionStorage.getItem("baton-token")
  || prompt("Supervisor token");
sessionStorage.setItem("baton-token", token);
const auth = { headers: { Authorization: `Bearer ${token}` } };
const cases = new Map();
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  return s < 90 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`;
}

function renderCases() {
  const rows = [...cases.values()]
    .filter((c) => !["resolved", "abandoned"].includes(c.state))
    .sort((a, b) => (a.queued_at || a.created_at) - (b.queued_at || b.created_at));
  const body = $("cases");
  body.replaceChildren(...rows.map((c) => {
    const tr = el("tr");
    const worker = c.assigned_worker || (c.pending_offer ? `${c.pending_offer.worker_id} (offered)` : "");
    const waiting = ["queued", "offered", "transferring"].includes(c.state) ? ago(c.queued_at) : "";
    for (const v of [c.id, `${c.site} / ${c.device || "-"}`, c.language, c.channel]) tr.append(el("td", v));
    tr.append(el("td", c.state, `state ${c.state}`));
    for (const v of [c.step || "", worker, waiting]) tr.append(el("td", v));
    return tr;
  }));
}

function log(text) {
  const li = el("li", `${new Date().toLocaleTimeString()}  ${text}`);
  $("log").prepend(li);
  while ($("log").children.length > 40) $("log").lastChild.remove();
}

async function refreshStats() {
  const r = await fetch("/v1/stats", auth);
  if (!r.ok) return;
  const s = await r.json();
  const items = {
    "Waiting": s.waiting, "Offers pending": s.offers_pending,
    "Oldest wait": `${s.oldest_wait_s.toFixed(0)} s`,
    "Answered (1 h)": s.answered_last_hour,
    "ASA": s.asa_s === null ? "–" : `${s.asa_s.toFixed(1)} s`,
    [`Service level (${s.service_level_s} s)`]: s.service_level === null ? "–" : `${(s.service_level * 100).toFixed(0)} %`,
    "Workers busy": s.workers_busy, "Alerts": s.alerts,
  };
  $("kpis").replaceChildren(...Object.entries(items).map(([k, v]) => {
    const box = el("div", null, "kpi");
    box.append(el("dt", k), el("dd", v));
    return box;
  }));
}

async function refreshWorkers() {
  const r = await fetch("/v1/workers", auth);
  if (!r.ok) return;
  const { workers } = await r.json();
  $("workers").replaceChildren(...workers.map((w) => {
    const tr = el("tr");
    const load = Object.entries(w.load).filter(([, n]) => n).map(([c, n]) => `${c}:${n}`).join(" ");
    tr.append(el("td", w.name || w.id), el("td", w.kind), el("td", w.presence, `presence ${w.presence}`),
      el("td", load || "idle"), el("td", Object.keys(w.languages).join(" ")));
    return tr;
  }));
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`);
  ws.onopen = () => { $("conn").textContent = "live"; };
  ws.onclose = (e) => {
    $("conn").textContent = `disconnected (${e.reason || e.code}); retrying…`;
    setTimeout(connect, 2000);
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "hello") { cases.clear(); msg.cases.forEach((c) => cases.set(c.id, c)); }
    else if (msg.type === "case") {
      const prev = cases.get(msg.case.id);
      if (!prev || prev.state !== msg.case.state) log(`${msg.case.id} → ${msg.case.state}${msg.case.assigned_worker ? " (" + msg.case.assigned_worker + ")" : ""}`);
      cases.set(msg.case.id, msg.case);
    } else if (msg.type === "presence") { log(`${msg.worker_id} is ${msg.presence}`); refreshWorkers(); }
    else if (msg.type === "alert") log(`ALERT ${msg.alert.kind}: ${msg.alert.message || ""}`);
    else if (msg.type === "step") { const c = cases.get(msg.case_id); if (c) c.step = msg.step; log(`${msg.case_id} widened to ${msg.step}`); }
    renderCases();
  };
}

connect();
refreshStats(); refreshWorkers();
setInterval(() => { refreshStats(); refreshWorkers(); renderCases(); }, 2000);
