// The floor monitor acting, not only watching: assign a waiting case to a chosen person with
// "why not matched" per workflow step (/v1/cases/{id}/why-not, /assign), alert actions (jump,
// assign, acknowledge), per-person time in state (/v1/directory) and trend charts drawn in
// the page from the store's history (/v1/trends; endpoints/shared/chart.js).
import { $, el, dur, showError } from "/static/shared/dom.js";
import { lineChart } from "/static/shared/chart.js";

let ctx = null;
const floor = { people: new Map(), assigning: null, trends: null };

export function initFloorActions(context) {
  ctx = context;
  $("assign").addEventListener("submit", submitAssign);
  $("assign-cancel").addEventListener("click", closeAssign);
  $("assign").addEventListener("keydown", (e) => { if (e.key === "Escape") closeAssign(); });
  for (const id of ["trend-site", "trend-queue", "trend-hours"]) {
    $(id).addEventListener("change", refreshTrends);
  }
}

// --- people -----------------------------------------------------------------------------

export async function refreshDirectory() {
  const r = await ctx.api("/v1/directory");
  if (!r.ok) return;
  floor.people = new Map(r.data.people.map((p) => [p.id, p]));
}

// {state, since}: available / busy / wrap-up / away / offline and since when (router clock).
export function personState(id) {
  const p = floor.people.get(id);
  if (!p || !p.since) return null;
  return { state: p.state, since: p.since };
}

// --- waiting cases: why not matched, assign ---------------------------------------------

function button(text, label, action, onClick) {
  const b = el("button", text);
  b.type = "button";
  b.dataset.action = action;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

export function waitingActions(c) {
  return [button("Assign…", `Assign case ${c.id} to a person`, "assign", () => openAssign(c.id))];
}

async function openAssign(caseId) {
  floor.assigning = caseId;
  $("assign-case").textContent = caseId;
  $("assign-status").textContent = "Checking who could take it…";
  $("whynot").replaceChildren();
  $("assign").hidden = false;
  const [why] = await Promise.all([ctx.api(`/v1/cases/${encodeURIComponent(caseId)}/why-not`),
    refreshDirectory()]);
  if (floor.assigning !== caseId) return;
  if (!why.ok) {
    $("assign-status").textContent = `Cannot explain: ${ctx.refusal(why)}`;
  } else {
    renderWhyNot(why.data);
    $("assign-status").textContent = "";
  }
  const c = ctx.state.cases.get(caseId);
  const channel = c ? c.channel : "chat";
  const lang = c ? c.language : null;
  const people = [...floor.people.values()].filter((p) => p.can_take.includes(channel))
    .sort((a, b) => (b.languages[lang] || 0) - (a.languages[lang] || 0) || a.id.localeCompare(b.id));
  const sel = $("assign-to");
  sel.replaceChildren(el("option", people.length ? "Choose a person…" : "No one is free for this channel"),
    ...people.map((p) => {
      const o = el("option", `${p.name || p.id} (${p.id}) — ${p.kind.replace("_", " ")}, `
        + `${Object.entries(p.languages).map(([k, v]) => `${k} ${v}`).join(" ")}; `
        + `${Object.entries(p.skills).map(([k, v]) => `${k} ${v}`).join(", ") || "no skills"}`);
      o.value = p.id;
      return o;
    }));
  sel.firstChild.value = "";
  sel.focus();
}

function renderWhyNot(w) {
  const req = w.requirement;
  $("whynot-req").textContent = `Needs: ${req.language}, ${req.channel}`
    + `${Object.keys(req.skills).length ? `, ${Object.entries(req.skills).map(([k, v]) => `${k} ${v}`).join(", ")}` : ""}`
    + ` · workflow ${w.workflow}${w.excluded.length ? ` · declined or missed by ${w.excluded.join(", ")}` : ""}`;
  $("whynot").replaceChildren(...w.steps.map((s) => {
    const li = el("li", null, s.matched.length ? "ok" : "unmet");
    li.dataset.step = s.step;
    const head = el("strong", `${s.step}${s.current ? " (current step)" : ""}: `);
    li.append(head, el("span", s.matched.length ? `could go to ${s.matched.join(", ")}` : s.summary));
    if (!s.matched.length && s.unmet.length) {
      const ul = el("ul");
      ul.append(...s.unmet.map((u) => el("li", `No one available meets: ${u}`)));
      li.append(ul);
    }
    return li;
  }));
}

function closeAssign() {
  const id = floor.assigning;
  floor.assigning = null;
  $("assign").hidden = true;
  const b = id && document.querySelector(`tr[data-case="${CSS.escape(id)}"] button[data-action="assign"]`);
  if (b) b.focus();
}

async function submitAssign(e) {
  e.preventDefault();
  const caseId = floor.assigning;
  const to = $("assign-to").value;
  if (!caseId || !to) { $("assign-status").textContent = "Choose a person first."; return; }
  $("assign-status").textContent = `Assigning ${caseId} to ${to}…`;
  const note = $("assign-note").value.trim();
  const r = await ctx.api(`/v1/cases/${encodeURIComponent(caseId)}/assign`, "POST",
    { worker_id: to, note });
  if (r.ok) {
    ctx.log(`you assigned ${caseId} to ${to}`);
    $("assign-note").value = "";
    floor.assigning = null;
    $("assign").hidden = true;
    $("assign-status").textContent = "";
    showError("");
    ctx.showChangedCase(caseId, r.data);
  } else {
    $("assign-status").textContent = `Assign failed: ${ctx.refusal(r)}`;
  }
}

// --- alert actions ----------------------------------------------------------------------

export function alertActions(a, kind) {
  const out = [];
  const c = a.case_id ? ctx.state.cases.get(a.case_id) : null;
  if (c && document.querySelector(`#cases tr[data-case="${CSS.escape(c.id)}"]`)) {
    out.push(actionFor("jump", "Jump to case", `Jump to case ${c.id}`, () => {
      const row = document.querySelector(`#cases tr[data-case="${CSS.escape(c.id)}"]`);
      const th = row && row.querySelector("th");
      if (th) { th.tabIndex = -1; th.scrollIntoView({ block: "center" }); th.focus(); }
    }));
  }
  if (c && ctx.WAITING.includes(c.state)) {
    out.push(actionFor("assign", "Assign…", `Assign case ${c.id} from this alert`, () => openAssign(c.id)));
  }
  if (a.alert_id && !a.acknowledged_by) {
    out.push(actionFor("ack", "Acknowledge", `Acknowledge alert: ${kind}${a.case_id ? ` ${a.case_id}` : ""}`,
      async (b) => {
        b.disabled = true;
        const r = await ctx.api(`/v1/alerts/${encodeURIComponent(a.alert_id)}/ack`, "POST");
        if (!r.ok) { b.disabled = false; showError(`Could not acknowledge: ${ctx.refusal(r)}`); return; }
        Object.assign(a, r.data.alert);
        ctx.render();
      }));
  } else if (!a.alert_id) {
    // A condition the monitor sees (not a router alert): acknowledged on this screen until
    // it changes (a new condition is a new alert).
    out.push(actionFor("ack", "Acknowledge", `Acknowledge: ${kind}${a.case_id ? ` ${a.case_id}` : ""}`, () => {
      ctx.state.acked.add(`${a.kind}|${a.case_id || a.text}`);
      ctx.log(`acknowledged ${kind}${a.case_id ? ` on ${a.case_id}` : ""}`);
      ctx.render();
    }));
  }
  return out;
}

function actionFor(action, text, label, fn) {
  const b = el("button", text);
  b.type = "button";
  b.dataset.alertAction = action;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", () => fn(b));
  return b;
}

// --- trends -----------------------------------------------------------------------------

const CHARTS = [
  ["waiting", "Waiting", (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), null],
  ["service_level", "Service level", (v) => `${(v * 100).toFixed(0)} %`, 1],
  ["asa_s", "Average speed of answer", (v) => dur(v), null],
  ["escalation_rate", "Escalation rate", (v) => `${(v * 100).toFixed(0)} %`, 1],
  ["escalation_precision", "Escalation precision", (v) => `${(v * 100).toFixed(0)} %`, 1],
  ["escalation_recall", "Escalation recall", (v) => `${(v * 100).toFixed(0)} %`, 1],
];

export async function refreshTrends() {
  const q = new URLSearchParams({ hours: $("trend-hours").value, bucket_s: "600" });
  if ($("trend-site").value) q.set("site", $("trend-site").value);
  if ($("trend-queue").value) q.set("queue", $("trend-queue").value);
  const r = await ctx.api(`/v1/trends?${q}`);
  if (!r.ok) { $("trends-status").textContent = `Trends unavailable: ${ctx.refusal(r)}`; return; }
  floor.trends = r.data;
  renderTrends();
}

function fillSelect(id, values, all) {
  const sel = $(id);
  const cur = sel.value;
  const want = ["", ...values].join("|");
  if (sel.dataset.values === want) return;
  sel.dataset.values = want;
  sel.replaceChildren(el("option", all), ...values.map((v) => { const o = el("option", v); o.value = v; return o; }));
  sel.firstChild.value = "";
  sel.value = values.includes(cur) ? cur : "";
}

export function renderTrends() {
  const t = floor.trends;
  if (!t) return;
  fillSelect("trend-site", t.sites, "All sites");
  fillSelect("trend-queue", t.queues, "All queues");
  const answered = t.buckets.reduce((n, b) => n + b.answered, 0);
  const opened = t.buckets.reduce((n, b) => n + b.cases, 0);
  $("trends-status").textContent = `Last ${t.hours} h in ${t.bucket_s / 60}-minute steps`
    + `${t.site ? ` at ${t.site}` : ""}${t.queue ? ` in ${t.queue}` : ""}: ${opened} cases opened, ${answered} answered.`;
  $("charts").replaceChildren(...CHARTS.map(([key, title, fmt, max]) => {
    const fig = el("figure", null, "chart-card");
    fig.dataset.metric = key;
    const pts = t.buckets.map((b) => ({ t: b.end, v: b[key] }));
    const cap = el("figcaption", title);
    fig.append(cap, lineChart(pts, { title, fmt, max }));
    return fig;
  }));
}
