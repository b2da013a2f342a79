// Baton desk: one page for agents, specialists and remote workers.
// The worker WebSocket (/v1/ws, protocol in router/service/ws.py) brings offers, cases,
// presence and AI suggestions, and carries presence, accept and decline; case actions
// (notes, chat messages, transfer, close) go over REST (/v1/cases/{id}/…).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "baton-desk-token";
// One page, two surfaces: /desk for agents and specialists, /telepresence for remote workers
// on robots and kiosks (video first, started on accept; layout in endpoints/telepresence).
const SURFACE = location.pathname.replace(/\/+$/, "") === "/telepresence" ? "telepresence" : "desk";
if (SURFACE === "telepresence") {
  document.body.dataset.surface = SURFACE;
  document.title = "Baton — remote worker";
  document.querySelector("h1 .sub").textContent = "remote worker";
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = "/static/telepresence/telepresence.css";
  document.head.append(css);
}

const state = {
  token: null,
  me: null,            // {subject, role}
  ws: null,
  retry: null,         // reconnect timer
  offers: new Map(),   // offer_id -> {offer, preview}
  cases: new Map(),    // case_id -> {case, packet}
  current: null,       // case id shown
  suggestions: [],
};

// --- small helpers ----------------------------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function clock(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "";
}

function ago(ts) {
  if (!ts) return "–";
  const s = Math.max(0, Date.now() / 1000 - ts);
  return s < 90 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`;
}

function skillsText(skills) {
  const items = Object.entries(skills || {});
  return items.length ? items.map(([k, v]) => `${k} ${v}`).join(", ") : "none required";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setConn(kind, text) {
  const c = $("conn");
  c.dataset.state = kind;
  c.textContent = text;
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.message || `${method} ${path}: HTTP ${r.status}`);
  return data;
}

// --- sign in ----------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  showError("");
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showError(`Sign-in failed: ${e.message}`);
    setConn("refused", "signed out");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  if (location.hash.includes("token=")) history.replaceState(null, "", location.pathname);
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("signout").hidden = false;
  $("presence").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${state.me.subject} (${state.me.role.replace("_", " ")})`;
  connect();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  clearTimeout(state.retry);
  location.reload();
}

// --- WebSocket --------------------------------------------------------------------------

function connect() {
  clearTimeout(state.retry);
  const proto = location.protocol === "https:" ? "wss" : "ws";
  setConn("connecting", "connecting…");
  const ws = new WebSocket(`${proto}://${location.host}/v1/ws`);
  state.ws = ws;
  ws.onopen = () => {
    // The token goes in the first message, never in the URL (URLs end up in logs).
    ws.send(JSON.stringify({ type: "auth", token: state.token }));
    setConn("connected", "connected");
  };
  ws.onclose = (e) => {
    if (e.code === 4401 || e.code === 4403) {
      setConn("refused", "refused");
      showError(`The router refused this desk: ${e.reason || e.code}`);
      return;
    }
    setConn("reconnecting", `disconnected (${e.reason || e.code}); reconnecting…`);
    state.retry = setTimeout(connect, 2000);
  };
  ws.onmessage = (m) => handle(JSON.parse(m.data));
}

function send(msg) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    showError("Not connected to the router; try again in a moment.");
    return false;
  }
  state.ws.send(JSON.stringify(msg));
  return true;
}

function handle(msg) {
  switch (msg.type) {
    case "hello": onHello(msg); break;
    case "offer":
      state.offers.set(msg.offer.offer_id, { offer: msg.offer, preview: msg.case });
      renderOffers();
      break;
    case "offer_closed":
      state.offers.delete(msg.offer_id);
      renderOffers();
      break;
    case "accepted": onAccepted(msg); break;
    case "case": onCase(msg.case); break;
    case "presence":
      if (msg.worker_id === undefined || msg.worker_id === state.me.subject) showPresence(msg.presence);
      break;
    case "suggestion": onSuggestion(msg); break;
    case "signal_session": onSignalSession(msg); break;
    case "signal": onSignal(msg); break;
    case "error":
      showError(`${msg.request ? msg.request + ": " : ""}${msg.message}`);
      if ((msg.request === "signal_start" || msg.request === "signal") && media.pc) {
        mediaFailed(msg.message);
      }
      if (msg.request === "accept" || msg.request === "reject") renderOffers();
      break;
    default: break;  // step, alert, pong: not for this page yet
  }
}

function onHello(msg) {
  showPresence(msg.presence);
  state.offers.clear();
  for (const offer of msg.offers) {
    state.offers.set(offer.offer_id, { offer, preview: null });
    previewFromRest(offer);
  }
  for (const c of msg.cases) {
    if (c.assigned_worker === state.me.subject && c.state === "connected" && !state.cases.has(c.id)) {
      state.cases.set(c.id, { case: c, packet: null });
      refreshPacket(c.id);
    }
  }
  renderOffers();
  renderCases();
}

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
    // Accepted elsewhere (REST, another tab): its offer is no longer open.
    for (const [id, o] of state.offers) if (o.offer.case_id === c.id) state.offers.delete(id);
    renderOffers();
  }
  const entry = state.cases.get(c.id);
  if (!entry) {
    if (c.assigned_worker === state.me.subject && c.state === "connected") {
      state.cases.set(c.id, { case: c, packet: null });
      refreshPacket(c.id);
      renderCases();
    }
    return;
  }
  entry.case = c;
  if (c.id === state.current) renderCaseMeta();
  refreshPacket(c.id);
}

async function refreshPacket(caseId) {
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

// --- presence ---------------------------------------------------------------------------

function showPresence(p) {
  for (const input of document.querySelectorAll('input[name="presence"]')) {
    input.checked = input.value === p;
  }
}

// --- rendering: offers ------------------------------------------------------------------

function renderOffers() {
  const list = $("offers");
  const items = [...state.offers.values()].sort((a, b) => a.offer.created_at - b.offer.created_at);
  $("offer-count").textContent = items.length;
  $("no-offers").hidden = items.length > 0;
  list.replaceChildren(...items.map(({ offer, preview }) => {
    const li = el("li", null, "offer");
    li.dataset.offerId = offer.offer_id;
    const p = preview || {};
    const h = el("h3", `Case ${offer.case_id}`);
    h.id = `offer-h-${offer.offer_id}`;
    li.setAttribute("aria-labelledby", h.id);
    const dl = el("dl");
    const hand = p.last_handoff;
    const rows = [
      ["Language", p.language], ["Channel", p.channel], ["Intent", p.intent || "not known"],
      ["Skills", skillsText(p.skills)], ["Where", p.site ? `${p.site} / ${p.device || "-"}` : ""],
      ["Waiting since", p.waiting_since ? `${clock(p.waiting_since)} (${ago(p.waiting_since)})` : "–"],
      ["Last handoff", hand ? handoffText(hand) : "none"],
      ["Offer expires", `${clock(offer.expires_at)}`],
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
    accept.addEventListener("click", () => {
      accept.disabled = true;
      if (!send({ type: "accept", offer_id: offer.offer_id })) accept.disabled = false;
    });
    const decline = el("button", "Decline", "secondary");
    decline.type = "button";
    decline.setAttribute("aria-label", `Decline case ${offer.case_id}`);
    decline.addEventListener("click", () => {
      decline.disabled = true;
      send({ type: "reject", offer_id: offer.offer_id, reason: "declined at the desk" });
    });
    buttons.append(accept, decline);
    li.append(h, dl, buttons);
    return li;
  }));
}

function handoffText(h) {
  const from = h.from_owner || "AI";
  const to = h.to_owner || "queue";
  return `${h.kind}: ${from} → ${to}${h.note ? ` — “${h.note}”` : ""}`;
}

// --- rendering: cases -------------------------------------------------------------------

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

function renderCaseMeta() {
  const entry = state.cases.get(state.current);
  if (!entry) return;
  const c = entry.case;
  $("case-h").textContent = `Case ${c.id}`;
  const who = c.assigned_worker ? `with ${c.assigned_worker}` : "unassigned";
  $("case-meta").textContent = `${c.site} / ${c.device || "-"} · ${c.language} · ${c.channel} · `
    + `${c.intent || "intent not known"} · ${c.state} · ${who}`;
  renderMedia();
  renderChat();
}

// The chat panel: only for a case connected to me. Messages go to the router, which records
// them in the transcript and, for a device's case, has the device translate and show them.
// The language a message or caption is written in: recorded with it, so the device translates
// from the right language and the transcript labels it truly. Choices: my roster languages,
// shown next to the text; default: my last choice this session, else my strongest language.
// A text without a single Japanese/Chinese character is not sent as ja/zh (the usual slip).
const writeLang = { loaded: false, value: null };
const SCRIPT = { ja: /[\u3040-\u30ff\u4e00-\u9fff]/, zh: /[\u4e00-\u9fff]/, ko: /[\uac00-\ud7af]/ };
const LANG_KEY = "baton.writeLang";

function languageSlip(text, lang) {
  const re = SCRIPT[lang];
  return re && !re.test(text)
    ? `This text has no ${lang} characters but is marked “${lang}”: choose the language it is written in.`
    : "";
}

async function loadWriteLanguages() {
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
    });
  }
}

function renderChat() {
  const entry = state.cases.get(state.current);
  const c = entry && entry.case;
  const mine = !!c && c.state === "connected" && c.assigned_worker === state.me.subject;
  $("chat").hidden = !mine;
  if (!mine) return;
  loadWriteLanguages();
  $("chat-where").textContent = c.device
    ? `Shown on ${c.device}'s screen in ${c.language}, translated by the device.`
    : "Added to the conversation.";
}

function renderCase(notice) {
  const entry = state.cases.get(state.current);
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
  $("esc-reasons").replaceChildren(...(reasons.length ? reasons : [esc ? "no reason given" : "Not escalated by the AI (opened for a person)."])
    .map((r) => el("li", r)));
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
    li.append(el("div", `${clock(s.at)} · case ${s.case_id}${s.intent ? " · " + s.intent : ""}${conf}`, "sug-meta"));
    const text = el("p", s.text);
    if (s.language) text.lang = s.language;
    li.append(text);
    return li;
  }));
}

// --- case actions (REST) ----------------------------------------------------------------

function parseSkills(text) {
  const skills = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [name, level] = part.split(/[:=\s]+/);
    const n = Number(level || 3);
    if (!name || !Number.isInteger(n) || n < 1 || n > 5) throw new Error(`skill “${part}”: write name:level (1–5)`);
    skills[name] = n;
  }
  return skills;
}

async function caseAction(form, fn) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showError("");
  try {
    await fn(state.current);
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

function wireForms() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (t) signIn(t);
  });
  $("signout").addEventListener("click", signOut);
  for (const input of document.querySelectorAll('input[name="presence"]')) {
    input.addEventListener("change", () => { if (input.checked) send({ type: "presence", presence: input.value }); });
  }

  $("note-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      await api("POST", `/v1/cases/${encodeURIComponent(id)}/notes`, { text: $("note-text").value });
      $("note-text").value = "";
      $("case-status").textContent = "Note added.";
      await refreshPacket(id);
    });
  });

  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (e.target.querySelector("button[type=submit]").disabled) return;  // one in flight
    const text = $("chat-text").value.trim();
    if (!text) { $("chat-status").textContent = "Write a message first."; return; }
    const slip = languageSlip(text, $("chat-lang").value);
    if (slip) { $("chat-status").textContent = slip; $("chat-lang").focus(); return; }
    $("chat-status").textContent = "Sending…";
    caseAction(e.target, async (id) => {
      try {
        const r = await api("POST", `/v1/cases/${encodeURIComponent(id)}/messages`,
          { text, language: $("chat-lang").value || undefined });
        $("chat-text").value = "";
        $("chat-status").textContent = r.delivered_to
          ? `Sent to ${r.delivered_to}; its translation appears in the transcript once shown.`
          : (r.delivery_error || "Added to the conversation.");
      } catch (err) {
        $("chat-status").textContent = "Not sent (the reason is shown above); your message is kept.";
        throw err;
      }
      await refreshPacket(id);
    });
  });
  $("chat-text").addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line; Enter that ends an IME composition is not a send.
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    $("chat-form").requestSubmit();
  });

  $("transfer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      const body = { skills: parseSkills($("tr-skills").value), note: $("tr-note").value };
      for (const [key, input] of [["language", "tr-language"], ["workflow", "tr-workflow"], ["to_worker", "tr-worker"]]) {
        const v = $(input).value.trim();
        if (v) body[key] = v;
      }
      const c = await api("POST", `/v1/cases/${encodeURIComponent(id)}/transfer`, body);
      state.cases.get(id).case = c;
      renderCaseMeta();
      renderCases();
      $("case-status").textContent = "Transfer requested: the case stays with you until the next person accepts.";
      e.target.reset();
    });
  });

  $("close-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      const verdict = document.querySelector('input[name="verdict"]:checked').value;
      const body = { status: $("cl-status").value, code: $("cl-code").value.trim(), note: $("cl-note").value };
      if (verdict) body.ai_verdict = verdict;
      const c = await api("POST", `/v1/cases/${encodeURIComponent(id)}/close`, body);
      state.cases.get(id).case = c;
      renderCaseMeta();
      renderCases();
      $("case-status").textContent = `Case closed: ${c.state}${verdict ? ` (AI was ${verdict})` : ""}.`;
      e.target.reset();
    });
  });
}


// --- live video, captions and robot controls (WebRTC; docs/telepresence.md) -------------
// Signaling goes over the worker WebSocket (docs/protocol.md §11): signal_start →
// signal_session {session, device, ice_servers}, then signal {case_id, signal} both ways.
// Media flows directly to the device; captions (id 1) and device commands (id 2) travel on
// pre-negotiated data channels.

// Moves carry no duration: the device stops each one by itself at its safety timeout
// (at most 10 s) unless renewed, so a lost connection can never leave the robot moving.
const MOVES = {
  forward: { type: "move", linear: 0.3, angular: 0 },
  back: { type: "move", linear: -0.2, angular: 0 },
  left: { type: "move", linear: 0, angular: 0.6 },
  right: { type: "move", linear: 0, angular: -0.6 },
  stop: { type: "stop" },
  estop: { type: "estop", reason: "worker" },
};
const KEYS = { ArrowUp: "forward", ArrowDown: "back", ArrowLeft: "left", ArrowRight: "right" };

const media = {
  caseId: null,        // case the session belongs to
  session: null,
  pc: null,
  local: null,         // MediaStream from getUserMedia
  captions: null,      // RTCDataChannel id 1
  device: null,        // RTCDataChannel id 2
  pending: [],         // candidates that arrived before the answer
  seq: 0,
  captionRows: new Map(),
  retries: 0,          // reconnects after an ICE failure, this case
  autoStarted: new Set(),  // telepresence surface: cases whose video started on accept
};
const ICE_RETRIES = 3;

function mediaCase() {
  const entry = state.cases.get(state.current);
  if (!entry) return null;
  const c = entry.case;
  return c.state === "connected" && c.device && c.assigned_worker === state.me.subject ? c : null;
}

function renderMedia() {
  const c = mediaCase();
  $("media").hidden = !c;
  if (media.caseId && (!c || c.id !== media.caseId)) {
    const entry = state.cases.get(media.caseId);
    // The router already ended the session with both sides: no bye from here.
    if (!entry || entry.case.state !== "connected") {
      endMedia("The case is no longer connected to you.", false);
    } else if (entry.case.assigned_worker !== state.me.subject) {
      endMedia(`The case is now with ${entry.case.assigned_worker}.`, false);
    }
  }
  if (SURFACE === "telepresence" && c && !media.pc && !media.autoStarted.has(c.id)) {
    media.autoStarted.add(c.id);  // once: after "End video" the worker starts it again
    setTimeout(startMedia, 0);
  }
  const live = !!media.pc && c && c.id === media.caseId;
  $("media-start").disabled = !!media.pc;
  $("media-end").disabled = !live;
  const devOpen = !!(media.device && media.device.readyState === "open");
  for (const b of document.querySelectorAll("#robot-controls button")) b.disabled = !devOpen;
  $("caption-form").querySelector("button").disabled = !(media.captions && media.captions.readyState === "open");
}

function mediaStatus(text) { $("media-status").textContent = text; }

function mediaFailed(message) {
  endMedia(`Video failed: ${message}`);
}

function startMedia() {
  const c = mediaCase();
  if (!c || media.pc) return;
  media.caseId = c.id;
  mediaStatus("Asking the router for a session…");
  $("media-start").disabled = true;
  if (!send({ type: "signal_start", case_id: c.id })) { media.caseId = null; renderMedia(); }
}

function sendSignal(signal) {
  if (media.caseId) send({ type: "signal", case_id: media.caseId, signal });
}

async function onSignalSession(msg) {
  if (msg.case_id !== media.caseId || media.pc) return;
  media.session = msg.session;
  media.pending = [];
  const pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [] });
  media.pc = pc;
  renderMedia();
  mediaStatus(`Connecting to ${msg.device}…`);
  pc.onicecandidate = (e) => {
    const cand = e.candidate;
    sendSignal(cand ? { type: "candidate", candidate: cand.candidate, sdpMid: cand.sdpMid,
      sdpMLineIndex: cand.sdpMLineIndex, usernameFragment: cand.usernameFragment }
      : { type: "candidate", candidate: null });
  };
  pc.ontrack = (e) => {
    const v = $("remote-video");
    if (e.track.kind !== "video" && e.track.kind !== "audio") return;
    if (!v.srcObject) v.srcObject = e.streams[0] || new MediaStream();
    if (!e.streams[0]) v.srcObject.addTrack(e.track);
    v.play().catch(() => { v.muted = true; v.play().catch(() => {}); });
  };
  pc.onconnectionstatechange = () => {
    if (media.pc !== pc) return;
    const s = pc.connectionState;
    if (s === "connected") { media.retries = 0; mediaStatus(`Live with ${msg.device}.`); }
    else if (s === "failed" && media.retries < ICE_RETRIES) {
      // A new session: the device replaces its peer (fresh ICE), the case keeps going.
      const caseId = media.caseId, attempt = ++media.retries;
      endMedia(`The connection failed; reconnecting (attempt ${attempt} of ${ICE_RETRIES})…`);
      setTimeout(() => { if (state.current === caseId) startMedia(); }, 500 * attempt);
    }
    else if (s === "failed") mediaFailed("the connection failed");
    else if (s !== "closed") mediaStatus(`Connection: ${s}…`);
  };
  media.captions = pc.createDataChannel("captions", { negotiated: true, id: 1 });
  media.device = pc.createDataChannel("device", { negotiated: true, id: 2 });
  for (const ch of [media.captions, media.device]) {
    ch.onopen = renderMedia;
    ch.onclose = renderMedia;
  }
  media.captions.onmessage = (e) => onChannelMessage(e.data, onCaption);
  media.device.onmessage = (e) => onChannelMessage(e.data, onDeviceMessage);
  try {
    try {
      media.local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (e) {
      mediaStatus(`No camera or microphone (${e.message}): receiving only.`);
      media.local = null;
    }
    if (media.pc !== pc) return;
    if (media.local) {
      $("local-video").srcObject = media.local;
      for (const t of media.local.getTracks()) pc.addTrack(t, media.local);
    } else {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    sendSignal({ type: "offer", sdp: pc.localDescription.sdp });
  } catch (e) {
    mediaFailed(e.message);
  }
}

async function onSignal(msg) {
  const pc = media.pc;
  if (!pc || msg.case_id !== media.caseId) return;
  if (msg.session && media.session && msg.session !== media.session) return;
  const sig = msg.signal || {};
  try {
    if (sig.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: sig.sdp });
      for (const c of media.pending.splice(0)) await addCandidate(pc, c);
    } else if (sig.type === "offer") {
      // The device may offer (either side may): answer it.
      await pc.setRemoteDescription({ type: "offer", sdp: sig.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      sendSignal({ type: "answer", sdp: pc.localDescription.sdp });
    } else if (sig.type === "candidate") {
      if (!pc.remoteDescription) media.pending.push(sig);
      else await addCandidate(pc, sig);
    } else if (sig.type === "bye") {
      endMedia(`The session ended (${sig.reason || "bye"}).`, false);
    }
  } catch (e) {
    mediaFailed(e.message);
  }
}

async function addCandidate(pc, sig) {
  if (!sig.candidate) { await pc.addIceCandidate(); return; }  // end of candidates
  await pc.addIceCandidate({ candidate: sig.candidate, sdpMid: sig.sdpMid ?? null,
    sdpMLineIndex: sig.sdpMLineIndex ?? null, usernameFragment: sig.usernameFragment });
}

function endMedia(text, sayBye = true) {
  if (media.pc) {
    if (sayBye) sendSignal({ type: "bye", reason: "closed" });
    media.pc.onconnectionstatechange = null;
    media.pc.close();
  }
  if (media.local) for (const t of media.local.getTracks()) t.stop();
  for (const id of ["remote-video", "local-video"]) $(id).srcObject = null;
  Object.assign(media, { caseId: null, session: null, pc: null, local: null, captions: null,
    device: null, pending: [] });
  mediaStatus(text || "Video is off.");
  renderMedia();
}

function onChannelMessage(data, fn) {
  try {
    fn(JSON.parse(data));
  } catch (e) { /* a bad message from the device: ignore it */ }
}

function onCaption(m) {
  if (m.type !== "caption") return;
  const list = $("captions");
  let li = media.captionRows.get(m.id);
  if (!li) {
    li = el("li", null, "caption");
    media.captionRows.set(m.id, li);
    list.append(li);
    while (list.children.length > 50) {
      const first = list.firstElementChild;
      for (const [k, v] of media.captionRows) if (v === first) media.captionRows.delete(k);
      first.remove();
    }
  }
  const who = el("strong", `${m.speaker}: `);
  const text = el("span", m.text, "text");
  text.lang = m.lang || "";
  const parts = [who, el("span", m.lang, "lang"), text];
  if (m.original && m.original.text) {
    const orig = el("div", null, "orig");
    const o = el("span", m.original.text);
    o.lang = m.original.lang || "";
    orig.append(el("span", m.original.lang, "lang"), o);
    parts.push(orig);
  }
  if (m.final === false) li.classList.add("partial"); else li.classList.remove("partial");
  li.replaceChildren(...parts);
  list.scrollTop = list.scrollHeight;
}

// A typed caption is a message to the resident: the router records it first, then the
// device translates and shows it and echoes what the resident reads on the captions channel
// (nothing reaches the resident's screen that is not in the case record).
function sendCaption(text) {
  const id = media.caseId;
  if (!id) return false;
  loadWriteLanguages();
  const language = $("caption-lang").value || writeLang.value || undefined;
  const slip = language && languageSlip(text, language);
  if (slip) { showError(slip); $("caption-lang").focus(); return false; }
  api("POST", `/v1/cases/${encodeURIComponent(id)}/messages`, { text, language })
    .then(() => refreshPacket(id))
    .catch((e) => showError(`Caption not sent: ${e.message}`));
  return true;
}

function robotCommand(name) {
  const ch = media.device;
  const command = MOVES[name];
  if (!ch || ch.readyState !== "open" || !command) return;
  ch.send(JSON.stringify({ type: "command", id: `c${++media.seq}`, command }));
  $("ds-result").textContent = `${name} sent…`;
}

function fmt(n, digits = 2) { return typeof n === "number" ? n.toFixed(digits) : "–"; }

function showDeviceState(s) {
  if (!s) return;
  $("ds-battery").textContent = s.battery == null ? "mains power"
    : `${(s.battery * 100).toFixed(0)} %${s.charging ? " (charging)" : ""}`;
  $("ds-pose").textContent = s.pose ? `x ${fmt(s.pose.x)} m, y ${fmt(s.pose.y)} m, θ ${fmt(s.pose.theta)} rad` : "–";
  $("ds-motion").textContent = s.estop ? `EMERGENCY STOP (${s.estop_reason || "latched"})`
    : (s.linear || s.angular) ? `moving ${fmt(s.linear)} m/s, ${fmt(s.angular)} rad/s`
    : `stopped${s.stops ? ` (stopped by itself ${s.stops}×)` : ""}`;
  $("ds-motion").dataset.stops = String(s.stops || 0);
  if (s.media) {
    $("ds-video").textContent = s.media.rx_frames
      ? `${fmt(s.media.rx_fps, 0)} fps${s.media.rx_size ? ` at ${s.media.rx_size.join("×")}` : ""}`
      : "no video from you yet";
    $("ds-video").dataset.fps = String(s.media.rx_fps || 0);
  }
}

function onDeviceMessage(m) {
  if (m.type === "device_state") showDeviceState(m.state);
  else if (m.type === "command_result") {
    $("ds-result").textContent = m.ok ? "ok" : `refused: ${m.message || m.error}`;
    showDeviceState(m.state);
  } else if (m.type === "error") {
    $("ds-result").textContent = `error: ${m.message}`;
  }
}

function wireMedia() {
  $("media-start").addEventListener("click", startMedia);
  $("media-end").addEventListener("click", () => endMedia("You ended the video."));
  $("caption-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("caption-text");
    const text = input.value.trim();
    if (text && sendCaption(text)) input.value = "";
  });
  const controls = $("robot-controls");
  controls.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-cmd]");
    if (b && !b.disabled) robotCommand(b.dataset.cmd);
  });
  controls.addEventListener("keydown", (e) => {
    const name = KEYS[e.key];
    if (!name) return;
    e.preventDefault();
    robotCommand(name);
  });
  window.addEventListener("beforeunload", () => { if (media.pc) endMedia(); });
}

// --- start ------------------------------------------------------------------------------

wireForms();
wireMedia();
setInterval(() => {  // keep "waiting since" honest
  for (const dd of document.querySelectorAll("dd[data-since]")) {
    const ts = Number(dd.dataset.since);
    if (ts) dd.textContent = `${clock(ts)} (${ago(ts)})`;
  }
}, 1000);
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
const saved = fromHash || sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved); else $("token").focus();
