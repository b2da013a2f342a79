// Baton floor monitor (supervisors): sites and devices, queues, active cases and who has them,
// alerts, KPIs. REST for snapshots, the worker WebSocket (as a supervisor) for live changes.
// A supervisor can reassign a connected case to a named worker (a warm transfer), or take it
// themselves when they are on the worker roster (they then work it at /desk).
import { $, el, dur, showError, labelCells } from "/static/shared/dom.js";
import { api as rest, attempt } from "/static/shared/api.js";
import { openSocket } from "/static/shared/socket.js";
import { savedToken, signIn as sharedSignIn, signOut as sharedSignOut } from "/static/shared/signin.js";
import { chime } from "/static/shared/attention.js";
import { initFloorActions, refreshTrends, refreshDirectory, alertActions, waitingActions,
  personState } from "./floor_actions.js";

const TOKEN_KEY = "baton-token";
const WAITING = ["queued", "offered", "transferring"];
const ACTIVE = [...WAITING, "connected", "escalating"];
const SEVERITY = {
  wait_exceeded: "bad", transfer_failed: "bad", device_offline: "bad", worker_disconnected: "bad",
  worker_away: "warn", device_battery_low: "warn", device_outbox_full: "warn", device_online: "info",
  emergency: "bad",
};
const LABEL = {
  wait_exceeded: "Waited too long", transfer_failed: "Transfer failed",
  device_offline: "Device offline", device_online: "Device back online",
  worker_away: "Worker away", worker_disconnected: "Worker disconnected",
  device_battery_low: "Battery low", device_outbox_full: "Device outbox full",
  sl_wait: "Waiting past service level", loop: "Escalation loop", transfer_loop: "Transfer loop",
  worker_gone: "Worker not at desk", emergency: "Emergency",
};

const state = {
  me: null, socket: null, timers: [], skew: 0, slS: 20,
  cases: new Map(), workers: [], devices: [], sites: [], stats: null, kpis: null,
  sync: null,            // Map device → bridge view, or null when /v1/sync is unavailable
  syncMsg: "", alerts: [], reassigning: null,
  acked: new Set(),      // derived alerts acknowledged on this screen (kind|case)
  sounded: new Set(),    // urgent alerts already sounded
};
// The floor's REST shape: {ok, status, data} (it shows refusals inline rather than throw).
const api = (path, method = "GET", body) => attempt(rest(method, path, body));

const now = () => Date.now() / 1000 + state.skew;   // the router's clock

const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(0)} %`);
const clock = (ts) => new Date((ts - state.skew) * 1000).toLocaleTimeString();
const workerName = (id) => {
  const w = state.workers.find((x) => x.id === id);
  return w && w.name ? `${w.name} (${id})` : id;
};



// --- sign in --------------------------------------------------------------------------

async function signIn(token) {
  let me;
  try {
    me = await sharedSignIn(TOKEN_KEY, token, { roles: ["supervisor", "admin"],
      pageFor: "the floor monitor is for supervisors." });
  } catch (e) {
    showError(e.message);
    $("signin").hidden = false;
    $("token").focus();
    return;
  }
  showError("");
  state.me = me.subject;
  $("signin").hidden = true;
  $("floor").hidden = false;
  $("signout").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${me.subject} (${me.role})`;
  initFloorActions({ state, api, render, log, workerName, now, showChangedCase, refusal, WAITING });
  await Promise.all([refreshWorkers(), refreshDevices(), refreshStats(), refreshAlerts(),
    refreshSync(), refreshKpis(), refreshTrends(), refreshDirectory()]);
  state.socket = openSocket({
    onMessage: (msg) => { onMessage(msg); render(); },
    onStatus: (st, text) => setConn(st === "refused" || st === "reconnecting" ? "disconnected" : st,
      st === "connected" ? "live" : st === "refused" ? "signed out" : text),
    onRefused: (why) => showError(`The router refused the live connection: ${why}`),
  });
  state.timers.push(setInterval(render, 1000));
  state.timers.push(setInterval(() => { refreshStats(); refreshWorkers(); refreshDirectory(); }, 5000));
  state.timers.push(setInterval(refreshKpis, 15000));
  state.timers.push(setInterval(refreshTrends, 60000));
  state.timers.push(setInterval(() => refreshSync(), 10000));
  render();
}

function signOut() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.socket) state.socket.close();
  sharedSignOut(TOKEN_KEY);
}

// --- snapshots ------------------------------------------------------------------------

async function refreshStats() {
  const r = await api("/v1/stats");
  if (!r.ok) return;
  state.stats = r.data;
  state.slS = r.data.service_level_s;
  state.skew = r.data.at - Date.now() / 1000;
  renderNow();
}

async function refreshKpis() {
  const r = await api("/v1/kpis");
  if (!r.ok) return;
  state.kpis = r.data;
  renderKpis();
}

async function refreshWorkers() {
  const r = await api("/v1/workers");
  if (!r.ok) return;
  state.workers = r.data.workers;
  renderWorkers();
}

async function refreshDevices() {
  const [d, s] = await Promise.all([api("/v1/devices"), api("/v1/sites")]);
  if (d.ok) state.devices = d.data.devices;
  if (s.ok) state.sites = s.data.sites;
}

async function refreshAlerts() {
  const r = await api("/v1/alerts");
  if (r.ok) state.alerts = r.data.alerts.slice();
  renderEmergency();
}

// --- the emergency protocol: a blocking dialog with sound until someone acknowledges ------
const emergency = { shown: null, audio: null, beep: null };

function openEmergency() {
  return state.alerts.find((a) => a.kind === "emergency" && a.blocking && !a.acknowledged_by);
}

function startSound() {
  // Web Audio beeps; a browser may hold audio until the page is touched: say so on screen.
  try {
    emergency.audio = emergency.audio || new AudioContext();
    const ctx = emergency.audio;
    const beep = () => {
      const o = ctx.createOscillator(); const g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.2;
      o.connect(g).connect(ctx.destination); o.start(); o.stop(ctx.currentTime + 0.35);
    };
    beep();
    emergency.beep = setInterval(beep, 1000);
    ctx.resume().catch(() => {});
    $("emergency").dataset.sound = ctx.state === "running" ? "playing" : "requested";
    $("emergency-sound").textContent = ctx.state === "running" ? "Alarm sounding."
      : "Alarm requested: the browser holds sound until you touch the page.";
  } catch (e) {
    $("emergency").dataset.sound = "unavailable";
    $("emergency-sound").textContent = "This browser cannot play the alarm.";
  }
}

function stopSound() {
  if (emergency.beep) clearInterval(emergency.beep);
  emergency.beep = null;
  $("emergency").dataset.sound = "off";
}

function renderEmergency() {
  const a = openEmergency();
  const dlg = $("emergency");
  if (!a) {
    if (dlg.open) dlg.close();
    stopSound();
    emergency.shown = null;
    return;
  }
  if (emergency.shown === a.alert_id && dlg.open) return;
  emergency.shown = a.alert_id;
  dlg.dataset.alert = a.alert_id;
  $("emergency-where").textContent = `${a.device} (${a.site})`;
  $("emergency-text").textContent = `${(a.flags || []).join(", ")}: a resident needs help now. `
    + "The case is first in line for anyone who speaks the language.";
  $("emergency-case").textContent = a.case_id;
  $("emergency-lang").textContent = a.language;
  $("emergency-number").textContent = a.number;
  if (!dlg.open) dlg.showModal();
  $("emergency-ack").focus();
  if (a.sound) startSound();
}

async function ackEmergency() {
  const id = $("emergency").dataset.alert;
  if (!id) return;
  $("emergency-ack").disabled = true;
  const r = await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, "POST");
  $("emergency-ack").disabled = false;
  if (!r.ok) { showError(`Could not acknowledge the alert: ${(r.data && r.data.message) || r.status}`); return; }
  upsertAlert(r.data.alert);
  log(`emergency ${id} acknowledged by ${r.data.alert.acknowledged_by}`);
  renderEmergency();
}

function upsertAlert(alert) {
  const i = alert.alert_id ? state.alerts.findIndex((x) => x.alert_id === alert.alert_id) : -1;
  if (i >= 0) state.alerts[i] = alert; else state.alerts.push(alert);
}

async function refreshSync() {
  // Device presence, battery and dock come from the MQTT bridge; without it the monitor
  // still shows the devices and their sessions, and says why the rest is missing.
  let r;
  try { r = await api("/v1/sync"); } catch { r = { ok: false, status: 0, data: null }; }
  if (r.ok) {
    state.sync = new Map(r.data.devices.map((d) => [d.device, d]));
    state.syncMsg = r.data.connected ? "" : `Device bridge is not connected to its broker (${r.data.last_error || "reconnecting"}); device status may be stale.`;
  } else {
    state.sync = null;
    state.syncMsg = r.status === 503
      ? "Device presence, battery and dock need the MQTT bridge (not running): devices show as unknown."
      : `Device presence unavailable (${r.status || "network error"}).`;
  }
  renderDevices();
}

// --- live -----------------------------------------------------------------------------

function setConn(st, text) {
  $("conn").dataset.state = st;
  $("conn").textContent = text;
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      state.cases.clear();
      msg.cases.forEach((c) => state.cases.set(c.id, c));
      refreshAlerts();
      break;
    case "case": {
      const c = msg.case;
      const prev = state.cases.get(c.id);
      if (!prev || prev.state !== c.state || prev.assigned_worker !== c.assigned_worker) {
        const who = c.assigned_worker || (c.pending_offer ? `offered to ${c.pending_offer.worker_id}` : "");
        log(`${c.id} → ${c.state}${who ? ` (${who})` : ""}`);
      }
      state.cases.set(c.id, c);
      soon(c.state);
      break;
    }
    case "presence": {
      const w = state.workers.find((x) => x.id === msg.worker_id);
      if (w) w.presence = msg.presence;
      log(`${msg.worker_id} is ${msg.presence}${msg.reason ? ` (${msg.reason})` : ""}`);
      refreshWorkers();
      break;
    }
    case "step": {
      const c = state.cases.get(msg.case_id);
      if (c) c.step = msg.step;
      log(`${msg.case_id} widened to ${msg.step}`);
      break;
    }
    case "alert":
      upsertAlert(msg.alert);
      log(`ALERT ${msg.alert.kind}: ${msg.alert.message || ""}`
        + (msg.alert.acknowledged_by ? ` (acknowledged by ${msg.alert.acknowledged_by})` : ""));
      renderEmergency();
      break;
    case "device":
      if (!state.sync) state.sync = new Map();
      state.sync.set(msg.device.device, msg.device);
      state.syncMsg = "";
      log(`${msg.device.device} is ${msg.device.status}${msg.reason ? ` (${msg.reason})` : ""}`);
      break;
    default:
      break;
  }
}

let soonTimer = null, soonKpis = false;
function soon(caseState) {
  // Loads, stats and KPIs follow case changes; coalesce bursts into one refresh.
  if (["resolved", "abandoned"].includes(caseState)) soonKpis = true;
  if (soonTimer) return;
  soonTimer = setTimeout(() => {
    soonTimer = null;
    refreshWorkers(); refreshStats();
    if (soonKpis) { soonKpis = false; refreshKpis(); }
  }, 300);
}

function log(text) {
  $("log").prepend(el("li", `${new Date().toLocaleTimeString()}  ${text}`));
  while ($("log").children.length > 60) $("log").lastChild.remove();
}

// --- rendering ------------------------------------------------------------------------

function activeCases() {
  return [...state.cases.values()].filter((c) => ACTIVE.includes(c.state))
    .sort((a, b) => (a.queued_at || a.created_at) - (b.queued_at || b.created_at));
}

function render() {
  $("clock").textContent = new Date().toLocaleTimeString();
  renderCases(); renderQueues(); renderDevices(); renderAlerts(); renderWorkers();
}

function kpiBoxes(target, items) {
  $(target).replaceChildren(...items.map(([k, v, bad]) => {
    const box = el("div", null, bad ? "kpi bad" : "kpi");
    box.append(el("dt", k), el("dd", v));
    return box;
  }));
}

function renderNow() {
  const s = state.stats;
  if (!s) return;
  kpiBoxes("now", [
    ["Waiting", s.waiting, s.waiting > 0 && s.oldest_wait_s > s.service_level_s],
    ["Oldest wait", dur(s.oldest_wait_s), s.oldest_wait_s > s.service_level_s],
    ["Offers pending", s.offers_pending],
    [`Service level (${s.service_level_s} s, 1 h)`, pct(s.service_level), s.service_level !== null && s.service_level < 0.8],
    ["ASA (1 h)", s.asa_s === null ? "–" : dur(s.asa_s)],
    ["Answered (1 h)", s.answered_last_hour],
    ["Workers busy", s.workers_busy],
    ["Available", (s.workers_by_presence || {}).available || 0],
  ]);
}

function renderKpis() {
  const k = state.kpis;
  if (!k) return;
  kpiBoxes("kpis", [
    ["Cases", k.cases], ["Escalation rate", pct(k.escalation_rate)],
    ["Escalation precision", pct(k.escalation_precision)], ["Escalation recall", pct(k.escalation_recall)],
    ["Time to human p50", dur(k.time_to_human_p50_s)], ["Time to human p90", dur(k.time_to_human_p90_s)],
    ["Transfers per case", k.transfers_per_case === null ? "–" : k.transfers_per_case.toFixed(2)],
    ["Handback rate", pct(k.handback_rate)], ["Abandoned", k.abandoned],
    [`Repeat contacts (${k.repeat_window_days} d)`, pct(k.repeat_contact_rate)],
    ["Rating", k.rating_mean === null ? "–" : `${k.rating_mean.toFixed(1)} (${k.ratings})`],
  ]);
}

function whoHasIt(c) {
  if (c.assigned_worker) return workerName(c.assigned_worker);
  if (c.pending_offer) return `${workerName(c.pending_offer.worker_id)} (offered)`;
  if (c.state === "transferring" && c.preferred_worker) return `→ ${workerName(c.preferred_worker)} (transfer)`;
  return "nobody yet";
}

const onRoster = () => state.workers.some((w) => w.id === state.me);

function actionButton(c, action, text, label, onClick) {
  const b = el("button", text);
  b.type = "button";
  b.dataset.action = action;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", () => onClick(c.id, b));
  return b;
}

function renderCases() {
  const rows = activeCases();
  $("cases-none").hidden = rows.length > 0;
  $("take-help").hidden = !state.workers.length || onRoster();
  // The table is rebuilt every second: keep the keyboard focus on the same button.
  const f = document.activeElement;
  const keep = f && f.dataset && f.dataset.action && $("cases").contains(f)
    ? [f.closest("tr").dataset.case, f.dataset.action] : null;
  $("cases").replaceChildren(...rows.map((c) => {
    const tr = el("tr");
    tr.dataset.case = c.id;
    tr.append(el("th", c.id));
    tr.firstChild.scope = "row";
    for (const v of [`${c.site} / ${c.device || "–"}`, c.language, c.channel]) tr.append(el("td", v));
    tr.append(el("td", c.state, `state ${c.state}`), el("td", c.step || ""), el("td", whoHasIt(c), "who"));
    const waited = WAITING.includes(c.state) && c.queued_at ? now() - c.queued_at : null;
    const w = el("td", waited === null ? "" : `Waiting ${dur(waited)}`, waited !== null && waited > state.slS ? "num late" : "num");
    tr.append(w);
    const act = el("td", null, "actions");
    if (WAITING.includes(c.state)) act.append(...waitingActions(c));
    if (c.state === "connected") {
      act.append(actionButton(c, "reassign", "Reassign", `Reassign case ${c.id}`, openReassign));
      if (c.assigned_worker !== state.me) {
        act.append(" ", actionButton(c, "take", "Take", `Take case ${c.id} yourself`, takeCase));
      }
    }
    tr.append(act);
    return tr;
  }));
  labelCells($("cases"));
  if (keep) {
    const b = document.querySelector(`tr[data-case="${CSS.escape(keep[0])}"] button[data-action="${keep[1]}"]`);
    if (b) b.focus();
  }
  if (state.reassigning && $("reassign-status").dataset.busy !== "1"
      && !rows.some((c) => c.id === state.reassigning && c.state === "connected")) {
    closeReassign();   // the case closed or moved on while the form was open
  }
}

function renderQueues() {
  const groups = new Map();
  for (const c of activeCases().filter((x) => WAITING.includes(x.state))) {
    const key = `${(c.requirement && c.requirement.workflow) || "default"} / ${c.step || "–"}`;
    const g = groups.get(key) || { waiting: 0, offered: 0, oldest: 0, late: 0 };
    const waited = c.queued_at ? now() - c.queued_at : 0;
    g.waiting += 1;
    if (c.state === "offered") g.offered += 1;
    g.oldest = Math.max(g.oldest, waited);
    if (waited > state.slS) g.late += 1;
    groups.set(key, g);
  }
  $("queues-none").hidden = groups.size > 0;
  $("queues").replaceChildren(...[...groups.entries()].sort().map(([k, g]) => {
    const tr = el("tr");
    const th = el("th", k); th.scope = "row";
    tr.append(th, el("td", g.waiting, "num"), el("td", g.offered, "num"),
      el("td", dur(g.oldest), g.oldest > state.slS ? "num late" : "num"),
      el("td", g.late ? `${g.late} (> ${state.slS} s)` : "0", g.late ? "num late" : "num"));
    return tr;
  }));
  labelCells($("queues"));
}

function sessionOn(device) {
  return activeCases().find((c) => c.device === device && c.state === "connected" && c.channel === "video");
}

function renderDevices() {
  $("sync-note").hidden = !state.syncMsg;
  $("sync-note").textContent = state.syncMsg;
  const body = [];
  for (const site of state.sites) {
    const devs = state.devices.filter((d) => d.site === site.id);
    const head = el("tr");
    const th = el("th", `${site.name || site.id} (${site.id})`, "site");
    th.colSpan = 7; th.scope = "colgroup";
    head.append(th);
    body.push(head);
    for (const d of devs) {
      const info = state.sync ? state.sync.get(d.id) : null;
      const status = info ? info.status : "unknown";
      const tel = (info && info.telemetry) || {};
      const tr = el("tr");
      tr.dataset.device = d.id;
      const name = el("th", d.name ? `${d.id} — ${d.name}` : d.id); name.scope = "row";
      tr.append(name, el("td", d.kind), el("td", status, `status ${status}`));
      const s = sessionOn(d.id);
      tr.append(el("td", s ? `In session: ${s.id} with ${workerName(s.assigned_worker)}` : "–"));
      const bat = tel.battery;
      tr.append(el("td", bat ? `${Number(bat.percent).toFixed(0)} %${bat.charging ? " (charging)" : ""}` : "–",
        bat && bat.percent < 20 && !bat.charging ? "late" : ""));
      tr.append(el("td", tel.docked === true ? "docked" : tel.docked === false ? "undocked" : "–"));
      tr.append(el("td", info && info.last_seen ? `${dur(now() - info.last_seen)} ago` : "–"));
      body.push(tr);
    }
  }
  $("devices").replaceChildren(...body);
  labelCells($("devices"));
}

function alertText(a) {
  const parts = [a.message || a.reason || ""];
  const ids = [a.case_id, a.worker_id, a.device].filter(Boolean).join(", ");
  if (ids && !(a.message || "").includes(ids)) parts.push(`(${ids})`);
  return parts.filter(Boolean).join(" ");
}

function derivedAlerts() {
  const out = [];
  const t = now();
  for (const c of activeCases()) {
    if (WAITING.includes(c.state) && c.queued_at && t - c.queued_at > state.slS) {
      out.push({ kind: "sl_wait", case_id: c.id, waiting: true, sev: t - c.queued_at > 3 * state.slS ? "bad" : "warn",
        text: `Resident at ${c.device || c.site} waiting ${dur(t - c.queued_at)} (service level ${state.slS} s) — ${c.id}` });
    }
    if (c.handbacks >= 2) out.push({ kind: "loop", case_id: c.id, sev: "warn", text: `${c.id} handed back ${c.handbacks} times` });
    if (c.transfers >= 3) out.push({ kind: "transfer_loop", case_id: c.id, sev: "warn", text: `${c.id} transferred ${c.transfers} times` });
    if (c.state === "connected" && c.assigned_worker) {
      const w = state.workers.find((x) => x.id === c.assigned_worker);
      if (w && w.presence !== "available") {
        out.push({ kind: "worker_gone", case_id: c.id, sev: "bad", text: `${workerName(w.id)} is ${w.presence} with ${c.id} connected` });
      }
    }
  }
  if (state.sync) {
    for (const d of state.sync.values()) {
      if (d.status === "offline") out.push({ kind: "device_offline", sev: "bad", text: `${d.device} at ${d.site} is offline` });
      for (const a of d.alarms || []) out.push({ kind: `device_${a}`, sev: "warn", text: `${d.device}: ${a.replace("_", " ")}` });
    }
  }
  return out.filter((a) => !state.acked.has(`${a.kind}|${a.case_id || a.text}`));
}

function alertItem(kind, sev, text, at, alert) {
  const li = el("li", null, sev);
  li.dataset.kind = kind;
  li.append(el("span", LABEL[kind] || kind, "kind"), el("span", text));
  if (at) {
    const tm = el("time", clock(at));
    tm.dateTime = new Date((at - state.skew) * 1000).toISOString();
    li.append(tm);
  }
  if (alert) {
    if (alert.case_id) li.dataset.case = alert.case_id;
    const acts = alertActions(alert, LABEL[kind] || kind);
    if (acts.length) li.append(el("div", null, "alert-actions"));
    if (acts.length) li.lastChild.append(...acts);
  }
  return li;
}

function renderAlerts() {
  const live = derivedAlerts();
  // Keep keyboard focus on the same alert action across the once-a-second rebuild.
  const f = document.activeElement;
  const keep = f && f.dataset && f.dataset.alertAction && $("attention").contains(f)
    ? [f.closest("li").dataset.kind, f.closest("li").dataset.case, f.dataset.alertAction] : null;
  $("attention").replaceChildren(...live.map((a) => alertItem(a.kind, a.sev, a.text, null, a)));
  if (keep) {
    const b = [...$("attention").querySelectorAll("li")].find((li) => li.dataset.kind === keep[0]
      && li.dataset.case === keep[1]);
    const btn = b && b.querySelector(`button[data-alert-action="${keep[2]}"]`);
    if (btn) btn.focus();
  }
  // Urgent alerts sound once each (Web Audio); the list stays until handled or acknowledged.
  for (const a of live) {
    const id = `${a.kind}|${a.case_id || a.text}`;
    if (a.sev === "bad" && !state.sounded.has(id)) {
      state.sounded.add(id);
      document.documentElement.dataset.alertSound = chime(3, 660);
    }
  }
  $("attention-none").hidden = live.length > 0;
  const recent = state.alerts.slice(-50).reverse();
  const key = recent.map((a) => `${a.kind}@${a.at}@${a.acknowledged_by || ""}`).join("|")
    + [...state.cases.values()].filter((c) => WAITING.includes(c.state)).map((c) => c.id).join(",");
  if ($("alerts").dataset.key !== key) {   // only touch the live region when it changes
    $("alerts").dataset.key = key;
    $("alerts").replaceChildren(...recent.map((a) => alertItem(a.kind, SEVERITY[a.kind] || "warn",
      alertText(a) + (a.acknowledged_by ? ` — acknowledged by ${a.acknowledged_by}` : ""), a.at, a)));
  }
  $("alerts-none").hidden = recent.length > 0;
  const n = live.filter((a) => a.sev !== "info").length;
  $("alert-count").textContent = n;
  $("alert-count").dataset.n = n;
  $("alert-count").setAttribute("aria-label", `${n} needing attention`);
}

function renderWorkers() {
  const mine = new Map();
  for (const c of activeCases()) {
    const who = c.assigned_worker || (c.pending_offer && c.pending_offer.worker_id);
    if (who) mine.set(who, [...(mine.get(who) || []), c.assigned_worker ? c.id : `${c.id} (offered)`]);
  }
  const order = { available: 0, away: 1, offline: 2 };
  const ws = state.workers.slice().sort((a, b) => (order[a.presence] - order[b.presence]) || a.id.localeCompare(b.id));
  $("workers").replaceChildren(...ws.map((w) => {
    const tr = el("tr");
    tr.dataset.worker = w.id;
    const th = el("th", workerName(w.id)); th.scope = "row";
    const load = Object.entries(w.load || {}).filter(([, n]) => n).map(([c, n]) => `${c}: ${n}`).join(", ");
    const ps = personState(w.id);
    tr.append(th, el("td", w.kind.replace("_", " ")), el("td", w.presence, `presence ${w.presence}`),
      el("td", ps ? `${ps.state} for ${dur(now() - ps.since)}` : "–", "num"),
      el("td", (mine.get(w.id) || []).join(", ") || "–"), el("td", load || "idle"),
      el("td", Object.entries(w.languages).map(([l, n]) => `${l} ${n}`).join(" ")));
    return tr;
  }));
  labelCells($("workers"));
}

// --- reassign -------------------------------------------------------------------------

function openReassign(caseId) {
  const c = state.cases.get(caseId);
  state.reassigning = caseId;
  $("reassign-case").textContent = caseId;
  $("reassign-status").textContent = "";
  const options = state.workers.filter((w) => w.presence === "available" && w.id !== c.assigned_worker
    && w.kind !== "floor_staff");
  const sel = $("reassign-to");
  sel.replaceChildren(el("option", options.length ? "Choose a worker…" : "No one else is available", ""),
    ...options.map((w) => {
      const o = el("option", `${workerName(w.id)} — ${w.kind.replace("_", " ")}, ${Object.keys(w.languages).join("/")}`);
      o.value = w.id;
      return o;
    }));
  sel.firstChild.value = "";
  $("reassign").hidden = false;
  sel.focus();
}

function closeReassign() {
  const id = state.reassigning;
  state.reassigning = null;
  $("reassign").hidden = true;
  const b = id && document.querySelector(`tr[data-case="${CSS.escape(id)}"] button[data-action="reassign"]`);
  if (b) b.focus();
}

async function submitReassign(e) {
  e.preventDefault();
  const caseId = state.reassigning;
  const to = $("reassign-to").value;
  if (!caseId || !to) { $("reassign-status").textContent = "Choose a worker first."; return; }
  $("reassign-status").dataset.busy = "1";
  $("reassign-status").textContent = `Reassigning ${caseId} to ${to}…`;
  const note = $("reassign-note").value.trim() || `Reassigned by the floor supervisor`;
  const r = await api(`/v1/cases/${encodeURIComponent(caseId)}/transfer`, "POST", { to_worker: to, note });
  $("reassign-status").dataset.busy = "";
  if (r.ok) {
    log(`you reassigned ${caseId} to ${to}`);
    $("reassign-note").value = "";
    $("reassign").hidden = true;
    state.reassigning = null;
    $("reassign-status").textContent = "";
    showError("");
    showChangedCase(caseId, r.data);
  } else {
    const why = refusal(r);
    $("reassign-status").textContent = `Reassign failed: ${why}`;
    state.alerts.push({ kind: "transfer_failed", at: now(), case_id: caseId, worker_id: to,
      message: `Reassigning ${caseId} to ${to} failed: ${why}` });
    render();
  }
}

// The case as the router now has it, shown, with focus on its row (keyboard users stay put).
function showChangedCase(caseId, data) {
  state.cases.set(caseId, data);
  render();
  const row = document.querySelector(`tr[data-case="${CSS.escape(caseId)}"] th`);
  if (row) { row.tabIndex = -1; row.focus(); }
}

const refusal = (r) => (r.data && (r.data.message || r.data.detail)) || `HTTP ${r.status}`;

// --- take -------------------------------------------------------------------------------

async function takeCase(caseId, button) {
  // The router checks the rest (on the roster, available at the desk, speaks the language)
  // and says what to do when it refuses.
  const c = state.cases.get(caseId);
  const from = c && c.assigned_worker ? workerName(c.assigned_worker) : "its worker";
  if (!confirm(`Take case ${caseId} from ${from}? It moves to your desk (/desk) at once and `
      + `cannot be routed back to ${from}.`)) return;
  button.disabled = true;
  const r = await api(`/v1/cases/${encodeURIComponent(caseId)}/take`, "POST", {});
  if (r.ok) {
    log(`you took ${caseId} from ${from}`);
    showError("");
    showChangedCase(caseId, r.data);
  } else {
    button.disabled = false;
    const why = refusal(r);
    showError(`Taking ${caseId} failed: ${why}`);
  }
}

// --- start ----------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (t) signIn(t);
});
$("signout").addEventListener("click", signOut);
$("emergency-ack").addEventListener("click", ackEmergency);
// Escape must not dismiss the emergency: only the acknowledgement closes it.
$("emergency").addEventListener("cancel", (e) => e.preventDefault());
document.addEventListener("pointerdown", () => {
  if (emergency.audio && emergency.audio.state !== "running") emergency.audio.resume();
});
$("reassign").addEventListener("submit", submitReassign);
$("reassign-cancel").addEventListener("click", closeReassign);
$("reassign").addEventListener("keydown", (e) => { if (e.key === "Escape") closeReassign(); });

const saved = savedToken(TOKEN_KEY);
if (saved) signIn(saved); else $("token").focus();
