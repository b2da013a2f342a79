// Baton desk: one page for agents, specialists and remote workers (/desk, /telepresence).
// The worker WebSocket (/v1/ws, protocol in router/service/ws.py) brings offers, cases,
// presence and AI suggestions, and carries presence, accept and decline; case actions
// (notes, chat messages, transfer, hand back, close) go over REST (/v1/cases/{id}/…).
// Shared pieces (REST client, socket, sign-in, attention) live in endpoints/shared.
import { $, el, dur, showError, setConn } from "/static/shared/dom.js";
import { api } from "/static/shared/api.js";
import { openSocket } from "/static/shared/socket.js";
import { savedToken, signIn, signOut } from "/static/shared/signin.js";
import { chime, notify, askNotifications, notificationState, flashTitle, stopFlash }
  from "/static/shared/attention.js";
import { plainReasons } from "/static/shared/reasons.js";
import { initMedia, renderMedia, onSignalSession, onSignal, mediaFailed } from "./media.js";
import { initCaseActions, renderWrapup } from "./actions.js";
import { initConsult, openConsult, endConsult, onConsult } from "./consult.js";

const TOKEN_KEY = "baton-desk-token";
// One script, two surfaces: /desk for agents and specialists, /telepresence for remote workers
// on robots and kiosks (its own document, endpoints/telepresence/index.html: video first,
// started on accept).
const SURFACE = document.body.dataset.surface === "telepresence" ? "telepresence" : "desk";

const state = {
  me: null,            // {subject, role}
  socket: null,
  offers: new Map(),   // offer_id -> {offer, preview, words}
  cases: new Map(),    // case_id -> {case, packet, transfer}
  current: null,       // case id shown
  suggestions: [],
  workspace: null,     // GET /v1/workspace: dispositions, canned, timeouts
  skew: 0,             // router clock − browser clock, from offers' created_at
  awayByRouter: null,  // reason the router set me away, until I come back
};

export const clock = (ts) => (ts ? new Date((ts - state.skew) * 1000).toLocaleTimeString() : "");
const routerNow = () => Date.now() / 1000 + state.skew;

function skillsText(skills) {
  const items = Object.entries(skills || {});
  return items.length ? items.map(([k, v]) => `${k} ${v}`).join(", ") : "none required";
}

// --- sign in ----------------------------------------------------------------------------

async function start(token) {
  showError("");
  try {
    state.me = await signIn(TOKEN_KEY, token);
  } catch (e) {
    showError(e.message);
    setConn("refused", "signed out");
    return;
  }
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("signout").hidden = false;
  $("presence").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${state.me.subject} (${state.me.role.replace("_", " ")})`;
  showAlertsState();
  api("GET", "/v1/workspace").then((w) => { state.workspace = w; fillWorkspace(); })
    .catch((e) => showError(`Dispositions and ready answers are unavailable: ${e.message}`));
  state.socket = openSocket({
    onMessage: handle,
    onStatus: setConn,
    onRefused: (why) => showError(`The router refused this desk: ${why}`),
  });
}

export function send(msg) {
  if (!state.socket || !state.socket.send(msg)) {
    showError("Not connected to the router; try again in a moment.");
    return false;
  }
  return true;
}

function handle(msg) {
  switch (msg.type) {
    case "hello": onHello(msg); break;
    case "offer": addOffer(msg.offer, msg.case, true); break;
    case "offer_closed":
      if (msg.status !== "accepted" && state.offers.has(msg.offer_id)) {
        endConsult(state.offers.get(msg.offer_id).offer.case_id);
      }
      state.offers.delete(msg.offer_id);
      renderOffers();
      break;
    case "accepted": onAccepted(msg); break;
    case "case": onCase(msg.case); break;
    case "presence":
      if (msg.worker_id === undefined || msg.worker_id === state.me.subject) {
        showPresence(msg.presence, msg.reason);
      }
      break;
    case "suggestion": onSuggestion(msg); break;
    case "transfer": onTransfer(msg); break;
    case "consult": onConsult(msg); break;
    case "signal_session": onSignalSession(msg); break;
    case "signal": onSignal(msg); break;
    case "error":
      showError(`${msg.request ? msg.request + ": " : ""}${msg.message}`);
      if (msg.request === "signal_start" || msg.request === "signal") mediaFailed(msg.message);
      if (msg.request === "accept" || msg.request === "reject") renderOffers();
      break;
    default: break;  // step, alert, pong: not for this page
  }
}

function onHello(msg) {
  showPresence(msg.presence);
  state.offers.clear();
  for (const offer of msg.offers) addOffer(offer, null, false);
  const seen = new Set();
  for (const c of msg.cases) {
    seen.add(c.id);
    if (state.cases.has(c.id)) onCase(c);  // a resync: the snapshot replaces what we had
    else if (c.assigned_worker === state.me.subject && c.state === "connected") {
      state.cases.set(c.id, { case: c, packet: null });
      refreshPacket(c.id);
    }
  }
  // A hello after a resync (decision 0010) lists only open cases we may see: a case we hold
  // that is missing changed while our updates were dropped (closed, moved on). Ask for it.
  for (const id of state.cases.keys()) if (!seen.has(id)) reconcile(id);
  renderOffers();
  renderCases();
}

async function reconcile(caseId) {
  try {
    const { case: c } = await api("GET", `/v1/cases/${encodeURIComponent(caseId)}`);
    onCase(c);
  } catch (e) {
    const entry = state.cases.get(caseId);
    if (!entry) return;
    entry.transfer = { status: "accepted", text: "This case is no longer with you." };
    renderCases();
    if (caseId === state.current) renderCaseMeta();
  }
}

// --- offers: cannot be missed -----------------------------------------------------------

function addOffer(offer, preview, fresh) {
  state.skew = offer.created_at - Date.now() / 1000;
  state.offers.set(offer.offer_id, { offer, preview, words: null });
  renderOffers();
  if (!preview) previewFromRest(offer);
  // A warm transfer offered to me: I may consult its sender before accepting.
  const hand = preview && preview.last_handoff;
  if (hand && hand.kind === "warm transfer") openConsult(offer.case_id, hand.from_owner);
  loadWords(offer);
  if (fresh) attract(offer, preview);
}

function attract(offer, preview) {
  const what = preview ? `${preview.language} · ${preview.channel}${preview.intent ? ` · ${preview.intent}` : ""}` : "";
  const sound = chime();
  document.documentElement.dataset.offerSound = sound;
  notify(`New case for you: ${offer.case_id}`, `${what}. Answer within ${Math.round(offer.expires_at - offer.created_at)} s.`,
    offer.offer_id, () => focusOffer(offer.offer_id));
  if (document.hidden || !document.hasFocus()) flashTitle(`● New offer — ${document.title}`);
}

function focusOffer(offerId) {
  const b = document.querySelector(`li.offer[data-offer-id="${CSS.escape(offerId)}"] button`);
  if (b) b.focus();
}

window.addEventListener("focus", stopFlash);
document.addEventListener("visibilitychange", () => { if (!document.hidden) stopFlash(); });

async function previewFromRest(offer) {
  // Offers present at connect come without their preview: the router answers an offered
  // case with its preview only (the packet comes with the accept).
  try {
    const { case: c } = await api("GET", `/v1/cases/${encodeURIComponent(offer.case_id)}`);
    const entry = state.offers.get(offer.offer_id);
    if (!entry) return;
    entry.preview = !c.handoffs ? c : {
      id: c.id, site: c.site, device: c.device, language: c.language, channel: c.channel,
      intent: c.intent, skills: (c.requirement || {}).skills || {}, waiting_since: c.queued_at,
      transfers: c.transfers, last_handoff: c.handoffs.length ? c.handoffs[c.handoffs.length - 1] : null,
    };
    renderOffers();
  } catch (e) { /* the offer may be gone already */ }
}

async function loadWords(offer) {
  try {
    const words = await api("GET", `/v1/offers/${encodeURIComponent(offer.offer_id)}/preview`);
    const entry = state.offers.get(offer.offer_id);
    if (!entry) return;
    entry.words = words;
    renderOffers();
  } catch (e) { /* gone already */ }
}

function countdownText(offer) {
  const left = Math.max(0, offer.expires_at - routerNow());
  return left > 0 ? `Answer within ${left.toFixed(0)} s` : "Expiring…";
}

function renderOffers() {
  const list = $("offers");
  const items = [...state.offers.values()].sort((a, b) => a.offer.created_at - b.offer.created_at);
  $("offer-count").textContent = items.length;
  $("no-offers").hidden = items.length > 0;
  $("offer-keys").hidden = items.length === 0;
  if (!items.length) stopFlash();
  list.replaceChildren(...items.map(({ offer, preview, words }) => {
    const li = el("li", null, "offer");
    li.dataset.offerId = offer.offer_id;
    const p = preview || {};
    const h = el("h3", `Case ${offer.case_id}`);
    h.id = `offer-h-${offer.offer_id}`;
    li.setAttribute("aria-labelledby", h.id);
    const cd = el("p", countdownText(offer), "countdown");
    cd.dataset.expires = String(offer.expires_at);
    cd.dataset.total = String(offer.expires_at - offer.created_at);
    const bar = el("progress");
    bar.max = 100;
    bar.value = Math.max(0, 100 * (offer.expires_at - routerNow()) / (offer.expires_at - offer.created_at));
    bar.setAttribute("aria-label", "Time left to answer");
    cd.append(bar);
    const parts = [h, cd];
    if (words) {
      const why = plainReasons(words.reasons);
      if (why.length) {
        const ul = el("ul", null, "why");
        ul.setAttribute("aria-label", "Why it came to a person");
        ul.append(...why.map((t) => el("li", t)));
        parts.push(ul);
      }
      for (const w of words.words.slice(-2)) {
        const q = el("blockquote", null, "words");
        const orig = el("p", `“${w.text}”`);
        orig.lang = w.language || "";
        q.append(orig);
        if (w.translated) {
          const tr = el("p", w.translated, "translated");
          tr.lang = w.translated_language || "en";
          q.append(tr);
        }
        parts.push(q);
      }
    }
    const dl = el("dl");
    const hand = p.last_handoff;
    const rows = [
      ["Language", p.language], ["Channel", p.channel], ["Intent", p.intent || "not known"],
      ["Skills", skillsText(p.skills)], ["Where", p.site ? `${p.site} / ${p.device || "-"}` : ""],
      ["Waiting since", p.waiting_since ? `${clock(p.waiting_since)} (${dur(routerNow() - p.waiting_since)})` : "–"],
      ["Last handoff", hand ? handoffText(hand) : "none"],
    ];
    for (const [k, v] of rows) {
      const dd = el("dd", v ?? "–");
      if (k === "Waiting since") dd.dataset.since = p.waiting_since || "";
      dl.append(el("dt", k), dd);
    }
    const buttons = el("div", null, "buttons");
    const accept = el("button", "Accept");
    accept.type = "button";
    accept.setAttribute("aria-label", `Accept case ${offer.case_id}`);
    accept.setAttribute("aria-keyshortcuts", "a");
    accept.addEventListener("click", () => answerOffer(offer.offer_id, true));
    const decline = el("button", "Decline", "secondary");
    decline.type = "button";
    decline.setAttribute("aria-label", `Decline case ${offer.case_id}`);
    decline.setAttribute("aria-keyshortcuts", "d");
    decline.addEventListener("click", () => answerOffer(offer.offer_id, false));
    buttons.append(accept, decline);
    li.append(...parts, dl, buttons);
    return li;
  }));
}

function answerOffer(offerId, accept) {
  const li = document.querySelector(`li.offer[data-offer-id="${CSS.escape(offerId)}"]`);
  const buttons = li ? [...li.querySelectorAll("button")] : [];
  buttons.forEach((b) => { b.disabled = true; });
  const ok = send(accept ? { type: "accept", offer_id: offerId }
    : { type: "reject", offer_id: offerId, reason: "declined at the desk" });
  if (!ok) buttons.forEach((b) => { b.disabled = false; });
  stopFlash();
}

function oldestOffer() {
  return [...state.offers.values()].sort((a, b) => a.offer.created_at - b.offer.created_at)[0];
}

export function typing(e) {
  const t = e.target;
  return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName)
    || t.closest("dialog[open]"));
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
  const k = e.key.toLowerCase();
  const o = oldestOffer();
  if (o && (k === "a" || k === "d")) {
    e.preventDefault();
    answerOffer(o.offer.offer_id, k === "a");
  }
});

function handoffText(h) {
  const from = h.from_owner || "AI";
  const to = h.to_owner || "queue";
  return `${h.kind}: ${from} → ${to}${h.note ? ` — “${h.note}”` : ""}`;
}

// --- presence and away ------------------------------------------------------------------

function showPresence(p, reason) {
  for (const input of document.querySelectorAll('input[name="presence"]')) {
    input.checked = input.value === p;
  }
  // Away set by the router (missed offers) is explained, with one click back.
  // Away set by the router (missed offers), not by this person ("set from the desk", or
  // "set by …" over REST, which a supervisor may do and which is said as it is).
  if (p === "away" && reason && reason !== "set from the desk"
      && reason !== `set by ${state.me.subject}`) {
    state.awayByRouter = reason;
  } else if (p !== "away") {
    state.awayByRouter = null;
  }
  const banner = $("away-banner");
  banner.hidden = !state.awayByRouter;
  if (state.awayByRouter) {
    const n = state.workspace ? state.workspace.away_after_timeouts : null;
    $("away-text").textContent = `You were set to Away because ${state.awayByRouter}`
      + `${n ? ` (after ${n} unanswered offers the router stops offering, so residents are not kept waiting on an empty desk)` : ""}. `
      + "No new offers come while you are away.";
  }
}

function showAlertsState() {
  const s = notificationState();
  const b = $("alerts-enable");
  b.hidden = s !== "default";
  $("alerts-state").hidden = false;
  $("alerts-state").textContent = s === "granted" ? "Offer alerts: sound, notification, title"
    : s === "denied" ? "Offer alerts: sound and title (notifications blocked in this browser)"
    : s === "unsupported" ? "Offer alerts: sound and title" : "Offer alerts: sound and title";
}

// --- cases ------------------------------------------------------------------------------

function onAccepted(msg) {
  state.offers.delete(msg.offer_id);
  state.cases.set(msg.case.id, { case: msg.case, packet: msg.packet });
  state.current = msg.case.id;
  renderOffers();
  renderCases();
  renderCase(`You accepted case ${msg.case.id}.`);
  $("case-h").focus();
}

function onCase(c) {
  if (c.assigned_worker === state.me.subject && c.state === "connected") {
    // Accepted elsewhere (REST, another tab, assigned by a supervisor): no longer an offer.
    for (const [id, o] of state.offers) if (o.offer.case_id === c.id) state.offers.delete(id);
    renderOffers();
  }
  const entry = state.cases.get(c.id);
  if (!entry) {
    if (c.assigned_worker === state.me.subject && c.state === "connected") {
      state.cases.set(c.id, { case: c, packet: null });
      if (!state.current) state.current = c.id;
      refreshPacket(c.id);
      renderCases();
    }
    return;
  }
  const before = entry.case;
  entry.case = c;
  trackTransfer(entry, before, c);
  if (c.id === state.current) renderCaseMeta();
  renderCases();
  refreshPacket(c.id);
}

// The sender's view of a warm transfer (router/service/core/warm.py, "transfer" messages): pending
// while the case stays here, then accepted (it moved), returned (nobody in time: it stays,
// with the reason) or cancelled. Never stuck on "requested".
function onTransfer(t) {
  const entry = state.cases.get(t.case_id);
  if (!entry) return;
  const until = t.deadline ? ` (until ${clock(t.deadline)})` : "";
  const text = {
    pending: `Transfer pending${t.to_worker ? ` to ${t.to_worker}` : ""}`
      + `${t.offered_to ? `: offered to ${t.offered_to}` : ": looking for the next person"}`
      + `${t.reason ? ` (${t.reason})` : ""}. You keep the resident until they accept${until}.`,
    accepted: `${t.to} accepted the transfer; the case is with them now.`,
    returned: `No one accepted the transfer (${t.reason}): ${t.text}. The case stays with you.`,
    cancelled: `Transfer cancelled: ${t.reason}.`,
  }[t.status] || "";
  entry.transfer = { status: t.status, text };
  // Consult: with the person it is offered to (or named), and after they accepted.
  if (t.status === "pending" || t.status === "accepted") {
    openConsult(t.case_id, t.status === "accepted" ? t.to : (t.offered_to || t.to_worker));
  } else {
    endConsult(t.case_id);
  }
  if (t.case_id === state.current) renderCaseMeta();
}

function trackTransfer(entry, before, c) {
  // A cold move (a supervisor's reassign): say where the case went.
  if (c.assigned_worker && c.assigned_worker !== state.me.subject && c.state === "connected"
      && (!entry.transfer || entry.transfer.status !== "accepted")) {
    entry.transfer = { status: "accepted", text: `The case is with ${c.assigned_worker} now.` };
  }
}

export async function refreshPacket(caseId) {
  try {
    const data = await api("GET", `/v1/cases/${encodeURIComponent(caseId)}`);
    const entry = state.cases.get(caseId);
    if (!entry) return;
    entry.case = data.case;
    entry.packet = data.packet;
    renderCases();
    if (caseId === state.current) renderCase();
  } catch (e) { /* no longer visible to us (transferred away): keep what we have */ }
}

function onSuggestion(msg) {
  state.suggestions.unshift({ ...msg, at: Date.now() / 1000 });
  state.suggestions.length = Math.min(state.suggestions.length, 30);
  renderSuggestions();
}

const isTerminal = (c) => ["resolved", "abandoned"].includes(c.state);

function renderCases() {
  const tabs = $("case-tabs");
  const ids = [...state.cases.keys()];
  $("no-cases").hidden = ids.length > 0;
  tabs.replaceChildren(...ids.map((id) => {
    const li = el("li");
    const entry = state.cases.get(id);
    const c = entry.case;
    const moved = c.assigned_worker && c.assigned_worker !== state.me.subject && !isTerminal(c)
      ? ` · now with ${c.assigned_worker}` : "";
    const b = el("button", `${id} · ${c.language} · ${c.state}${moved}`, "secondary");
    b.type = "button";
    b.setAttribute("aria-current", String(id === state.current));
    b.addEventListener("click", () => { state.current = id; renderCases(); renderCase(); });
    li.append(b);
    return li;
  }));
  if (state.current && !state.cases.has(state.current)) state.current = null;
  if (!state.current) $("case").hidden = true;
  renderMedia();
}

export function currentEntry() { return state.cases.get(state.current); }

export function renderCaseMeta() {
  const entry = currentEntry();
  if (!entry) return;
  const c = entry.case;
  $("case-h").textContent = `Case ${c.id}`;
  const who = c.assigned_worker ? `with ${c.assigned_worker}` : "unassigned";
  $("case-meta").textContent = `${c.site} / ${c.device || "-"} · ${c.language} · ${c.channel} · `
    + `${c.intent || "intent not known"} · ${c.state} · ${who}`;
  const t = entry.transfer;
  $("transfer-banner").hidden = !t;
  if (t) {
    $("transfer-text").textContent = t.text;
    $("transfer-banner").dataset.status = t.status;
    $("transfer-cancel").hidden = t.status !== "pending";
  }
  const mine = c.state === "connected" && c.assigned_worker === state.me.subject;
  for (const b of document.querySelectorAll("#actionbar button")) b.disabled = !mine;
  $("actionbar").hidden = isTerminal(c) && !entry.wrapup;
  renderWrapup(entry);
  renderMedia();
  renderChat();
}

// The language a message or caption is written in: recorded with it, so the device translates
// from the right language and the transcript labels it truly. Choices: my roster languages,
// shown next to the text; default: my last choice this session, else my strongest language.
// A text without a single Japanese/Chinese character is not sent as ja/zh (the usual slip).
export const writeLang = { loaded: false, value: null };
const SCRIPT = { ja: /[\u3040-\u30ff\u4e00-\u9fff]/, zh: /[\u4e00-\u9fff]/, ko: /[\uac00-\ud7af]/ };
const LANG_KEY = "baton.writeLang";

export function languageSlip(text, lang) {
  const re = SCRIPT[lang];
  return re && !re.test(text)
    ? `This text has no ${lang} characters but is marked “${lang}”: choose the language it is written in.`
    : "";
}

export async function loadWriteLanguages() {
  if (writeLang.loaded) return;
  writeLang.loaded = true;
  let langs = {};
  try {
    const r = await api("GET", "/v1/workers");
    const me = (r.workers || []).find((w) => w.id === state.me.subject);
    langs = (me && me.languages) || {};
  } catch (e) { /* not on the roster: the browser's language only */ }
  const browser = (navigator.language || "en").split("-")[0];
  const codes = Object.keys(langs).sort((a, b) => langs[b] - langs[a]);
  if (!codes.length) codes.push(browser);
  const last = sessionStorage.getItem(LANG_KEY);
  writeLang.value = codes.includes(last) ? last : codes[0];
  for (const sel of document.querySelectorAll("select.write-lang")) {
    sel.replaceChildren(...codes.map((c) => { const o = el("option", c); o.value = c; return o; }));
    sel.value = writeLang.value;
    sel.addEventListener("change", () => {
      writeLang.value = sel.value;
      sessionStorage.setItem(LANG_KEY, sel.value);
      for (const other of document.querySelectorAll("select.write-lang")) other.value = sel.value;
      fillCanned();
    });
  }
  fillCanned();
}

// Ready answers in the language chosen for writing (config/workspace.yaml `canned`).
function fillCanned() {
  const sel = $("canned");
  const lang = $("chat-lang").value || writeLang.value;
  const list = (state.workspace && state.workspace.canned[lang]) || [];
  sel.replaceChildren(el("option", list.length ? "Choose a ready answer…" : `No ready answers in ${lang}`),
    ...list.map((t) => { const o = el("option", t); o.value = t; o.lang = lang; return o; }));
  sel.firstElementChild.value = "";
}

function fillWorkspace() {
  const sel = $("cl-disposition");
  sel.replaceChildren(...state.workspace.dispositions.map((d) => {
    const o = el("option", `${d.label}${d.status === "abandoned" ? " (abandoned)" : ""}`);
    o.value = d.code;
    o.dataset.status = d.status;
    return o;
  }));
  fillCanned();
  if (state.awayByRouter) showPresence("away", state.awayByRouter);
}

function renderChat() {
  const entry = currentEntry();
  const c = entry && entry.case;
  const mine = !!c && c.state === "connected" && c.assigned_worker === state.me.subject;
  $("chat").hidden = !mine;
  if (!mine) return;
  loadWriteLanguages();
  $("chat-where").textContent = c.device
    ? `Shown on ${c.device}'s screen in ${c.language}, translated by the device.`
    : "Added to the conversation.";
}

export function renderCase(notice) {
  const entry = currentEntry();
  $("case").hidden = !entry;
  if (!entry) return;
  renderCaseMeta();
  if (notice !== undefined) $("case-status").textContent = notice;
  const p = entry.packet;
  if (!p) return;

  $("summary").textContent = p.summary || "No summary.";
  $("next-steps").replaceChildren(...(p.next_steps.length ? p.next_steps : ["None suggested."])
    .map((s) => el("li", s)));

  const esc = p.escalation;
  const reasons = esc ? esc.decision.reasons : [];
  const plain = plainReasons(reasons, 5);
  $("esc-plain").replaceChildren(...(plain.length ? plain : [esc ? "No reason given." : "Not escalated by the AI (opened for a person)."])
    .map((r) => el("li", r)));
  $("esc-reasons").replaceChildren(...(reasons.length ? reasons : ["none"]).map((r) => el("li", r)));
  const numbers = esc ? {
    "expected cost (AI)": esc.decision.expected_cost_ai, "cost (human)": esc.decision.cost_human,
    threshold: esc.decision.threshold, ...esc.decision.numbers, ...esc.signals,
  } : {};
  $("esc-numbers").replaceChildren(...Object.entries(numbers).flatMap(([k, v]) =>
    [el("dt", k), el("dd", typeof v === "number" ? +v.toFixed(3) : String(v))]));
  $("flags").replaceChildren(...(p.policy_flags.length ? p.policy_flags : ["none"]).map((f) => el("li", f)));

  $("transcript").replaceChildren(...p.transcript.map((t) => {
    const tr = el("tr");
    tr.append(el("td", clock(t.at), "time"),
      el("td", t.speaker === "human" ? (t.worker_id || "person") : t.speaker, "speaker"));
    const orig = el("td");
    orig.append(el("span", t.language, "lang"), document.createTextNode(t.text));
    orig.lang = t.language;
    const trans = el("td");
    if (t.translated) {
      trans.append(el("span", t.translated_language || "", "lang"), document.createTextNode(t.translated));
      if (t.translated_language) trans.lang = t.translated_language;
    } else if (t.untranslated) {
      trans.append(el("strong", "untranslated", "untranslated"),
        document.createTextNode(` — shown as written: ${t.untranslated}`));
    } else {
      trans.append(el("span", "—", "muted"));
    }
    tr.append(orig, trans);
    return tr;
  }));
  if (!p.transcript.length) {
    const tr = el("tr"); const td = el("td", "Nothing said yet."); td.colSpan = 4; tr.append(td);
    $("transcript").replaceChildren(tr);
  }

  $("actions").replaceChildren(...p.actions.map((a) => {
    const tr = el("tr");
    const args = el("td"); args.append(el("pre", JSON.stringify(a.args)));
    const res = el("td"); res.append(el("pre", typeof a.result === "string" ? a.result : JSON.stringify(a.result)));
    tr.append(el("td", a.tool), args, res, el("td", a.ok ? "yes" : "failed", a.ok ? "ok-yes" : "ok-no"));
    return tr;
  }));
  if (!p.actions.length) {
    const tr = el("tr"); const td = el("td", "No actions taken."); td.colSpan = 4; tr.append(td);
    $("actions").replaceChildren(tr);
  }

  $("handoffs").replaceChildren(...(p.handoffs.length ? p.handoffs.map((h) =>
    el("li", `${clock(h.at)} ${handoffText(h)}`)) : [el("li", "No handoffs yet.")]));
  $("notes").replaceChildren(...(p.notes.length ? p.notes.map((n) =>
    el("li", `${clock(n.at)} ${n.author}: ${n.text}`)) : [el("li", "No notes yet.")]));
}

function renderSuggestions() {
  $("no-sugg").hidden = state.suggestions.length > 0;
  $("suggestions").replaceChildren(...state.suggestions.map((s) => {
    const li = el("li", null, "suggestion");
    const conf = typeof s.confidence === "number" ? ` · confidence ${(s.confidence * 100).toFixed(0)} %` : "";
    li.append(el("div", `${new Date(s.at * 1000).toLocaleTimeString()} · case ${s.case_id}${s.intent ? " · " + s.intent : ""}${conf}`, "sug-meta"));
    const text = el("p", s.text);
    if (s.language) text.lang = s.language;
    li.append(text);
    return li;
  }));
}

// --- start ------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (t) start(t);
  });
  $("signout").addEventListener("click", () => {
    if (state.socket) state.socket.close();
    signOut(TOKEN_KEY);
  });
  for (const input of document.querySelectorAll('input[name="presence"]')) {
    input.addEventListener("change", () => {
      if (!input.checked) return;
      send({ type: "presence", presence: input.value });
      // A click is the gesture browsers want before sound or a permission prompt.
      if (input.value === "available") chime(0);
    });
  }
  $("back-available").addEventListener("click", () => {
    if (send({ type: "presence", presence: "available" })) {
      state.awayByRouter = null;
      $("away-banner").hidden = true;
    }
  });
  $("alerts-enable").addEventListener("click", async () => {
    chime(0);
    await askNotifications();
    showAlertsState();
  });
  $("canned").addEventListener("change", (e) => {
    if (!e.target.value) return;
    $("chat-text").value = e.target.value;
    e.target.value = "";
    $("chat-text").focus();
  });
}

wire();
initConsult(() => state.me, clock);
initMedia({ state, send, refreshPacket, loadWriteLanguages, languageSlip, writeLang, surface: SURFACE });
initCaseActions({ state, send, refreshPacket, renderCaseMeta, renderCases, renderCase,
  currentEntry, languageSlip, typing, routerNow, onTransfer });
setInterval(() => {  // keep countdowns and "waiting since" honest
  for (const p of document.querySelectorAll("p.countdown[data-expires]")) {
    const exp = Number(p.dataset.expires);
    p.firstChild.textContent = countdownText({ expires_at: exp });
    const bar = p.querySelector("progress");
    if (bar) bar.value = Math.max(0, 100 * (exp - routerNow()) / Number(p.dataset.total));
  }
  for (const dd of document.querySelectorAll("dd[data-since]")) {
    const ts = Number(dd.dataset.since);
    if (ts) dd.textContent = `${clock(ts)} (${dur(routerNow() - ts)})`;
  }
  const entry = currentEntry();
  if (entry && entry.wrapup) renderWrapup(entry);
}, 1000);
const saved = savedToken(TOKEN_KEY);
if (saved) start(saved); else $("token").focus();
