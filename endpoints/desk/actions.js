// Case actions on the desk: the sticky action bar and its dialogs (note, warm transfer with
// the live directory, hand back to the AI with its loop guard, close with a disposition),
// chat with ready answers, and the wrap-up after a close. REST: /v1/cases/{id}/…,
// /v1/directory, /v1/cases/{id}/wrapup/done. Wired by desk.js through initCaseActions(ctx).
import { $, el, dur, showError } from "/static/shared/dom.js";
import { api } from "/static/shared/api.js";

let ctx = null;
const SHORTCUTS = { n: "note-dlg", t: "transfer-dlg", h: "handback-dlg", c: "close-dlg" };

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
    await fn(ctx.state.current);
    return true;
  } catch (e) {
    showError(e.message);
    return false;
  } finally {
    button.disabled = false;
  }
}

function status(text) { $("case-status").textContent = text; }

// --- dialogs ----------------------------------------------------------------------------

function openDialog(id) {
  const entry = ctx.currentEntry();
  if (!entry) return;
  const c = entry.case;
  if (!(c.state === "connected" && c.assigned_worker === ctx.state.me.subject)) return;
  const dlg = $(id);
  if (id === "handback-dlg") renderHandbackGuard(c);
  if (id === "transfer-dlg") loadDirectory();
  dlg.showModal();
  const first = dlg.querySelector("textarea, input, select");
  if (first) first.focus();
}

function renderHandbackGuard(c) {
  const used = c.handbacks || 0;
  const blocked = used >= 1;
  $("handback-guard").textContent = blocked
    ? "This case was handed back to the AI once already. The loop guard allows it only once, so a resident is never passed back and forth: resolve it or transfer it instead."
    : "The AI takes over the conversation again. Loop guard: a case goes back to the AI only once; if it escalates again it comes to a person and cannot be handed back a second time.";
  $("handback-guard").dataset.blocked = String(blocked);
  $("handback-submit").disabled = blocked;
}

// --- the transfer directory -------------------------------------------------------------

const dir = { people: [], queues: [] };

async function loadDirectory() {
  try {
    const d = await api("GET", "/v1/directory");
    dir.people = d.people;
    dir.queues = d.queues;
  } catch (e) {
    showError(`The directory is unavailable (${e.message}); you can still type an id.`);
  }
  $("workflows").replaceChildren(...dir.queues.map((q) => {
    const o = el("option", `${q.waiting} waiting`);
    o.value = q.id;
    return o;
  }));
  renderDirectory();
}

function renderDirectory() {
  const q = $("dir-filter").value.trim().toLowerCase();
  const me = ctx.state.me.subject;
  const rows = dir.people.filter((p) => p.id !== me).filter((p) => !q || [p.id, p.name, p.kind,
    ...Object.keys(p.languages), ...Object.keys(p.skills)].join(" ").toLowerCase().includes(q));
  const order = { available: 0, busy: 1, away: 2, offline: 3 };
  rows.sort((a, b) => (order[a.state] ?? 4) - (order[b.state] ?? 4) || a.id.localeCompare(b.id));
  const c = ctx.currentEntry() && ctx.currentEntry().case;
  $("directory").replaceChildren(...rows.map((p) => {
    const tr = el("tr");
    tr.dataset.worker = p.id;
    const pick = el("td");
    const radio = el("input");
    radio.type = "radio";
    radio.name = "dir-pick";
    radio.value = p.id;
    radio.id = `dir-${p.id}`;
    const free = c ? p.can_take.includes(c.channel) : p.presence === "available";
    radio.disabled = !free;
    radio.setAttribute("aria-label", `Transfer to ${p.name || p.id}${free ? "" : " (cannot take it now)"}`);
    radio.checked = $("tr-worker").value === p.id;
    radio.addEventListener("change", () => { $("tr-worker").value = p.id; });
    pick.append(radio);
    const who = el("td");
    const label = el("label", `${p.name || p.id}`);
    label.htmlFor = radio.id;
    who.append(label, el("span", ` ${p.kind.replace("_", " ")}`, "muted"));
    const now = el("td", p.state === "busy" ? "busy" : p.presence, `presence ${p.state}`);
    const langs = el("td", Object.entries(p.languages).map(([k, v]) => `${k} ${v}`).join(", "));
    const skills = el("td", Object.entries(p.skills).map(([k, v]) => `${k} ${v}`).join(", ") || "–");
    const load = el("td", Object.entries(p.load).map(([k, v]) => `${v} ${k}`).join(", ") || "none");
    tr.append(pick, who, now, langs, skills, load);
    return tr;
  }));
}

// --- wrap-up ----------------------------------------------------------------------------

export function caseClosedHere(entry, closedAt, holdS) {
  entry.wrapup = { since: closedAt, until: closedAt + holdS };
}

export function renderWrapup(entry) {
  const w = entry && entry.wrapup;
  $("wrapup-banner").hidden = !w;
  if (!w) return;
  const now = ctx.routerNow();
  const s = Math.max(0, now - w.since);
  $("wrapup-timer").textContent = `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  const left = w.until - now;
  $("wrapup-text").textContent = left > 0
    ? `finish your notes; this case still counts in your capacity for up to ${dur(left)} more, so no new offer interrupts you.`
    : "the wrap-up time is over and your capacity is free again.";
  if (left <= 0 && !w.ended) { w.ended = true; }
  $("wrapup-done").disabled = !!w.ended;
}

async function wrapupDone() {
  const entry = ctx.currentEntry();
  if (!entry || !entry.wrapup) return;
  try {
    await api("POST", `/v1/cases/${encodeURIComponent(entry.case.id)}/wrapup/done`);
  } catch (e) {
    if (e.status !== 409) { showError(e.message); return; }
  }
  entry.wrapup.ended = true;
  entry.wrapup.until = ctx.routerNow();
  renderWrapup(entry);
  status("Wrap-up done: you can receive offers again.");
}

// --- wiring -----------------------------------------------------------------------------

export function initCaseActions(context) {
  ctx = context;
  for (const b of document.querySelectorAll("#actionbar button[data-open]")) {
    b.addEventListener("click", () => openDialog(b.dataset.open));
  }
  for (const b of document.querySelectorAll("dialog button[data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || ctx.typing(e)) return;
    const id = SHORTCUTS[e.key.toLowerCase()];
    if (!id || $("case").hidden) return;
    e.preventDefault();
    openDialog(id);
  });
  $("dir-filter").addEventListener("input", renderDirectory);
  $("wrapup-done").addEventListener("click", wrapupDone);

  $("note-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      await api("POST", `/v1/cases/${encodeURIComponent(id)}/notes`, { text: $("note-text").value });
      $("note-text").value = "";
      $("note-dlg").close();
      status("Note added.");
      await ctx.refreshPacket(id);
    });
  });

  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (e.target.querySelector("button[type=submit]").disabled) return;  // one in flight
    const text = $("chat-text").value.trim();
    if (!text) { $("chat-status").textContent = "Write a message first."; return; }
    const slip = ctx.languageSlip(text, $("chat-lang").value);
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
      await ctx.refreshPacket(id);
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
      // Warm: the case stays with you (video, chat) until the next person accepts; nobody in
      // time and it simply stays, with the reason (router/service/core/warm.py).
      const body = { skills: parseSkills($("tr-skills").value), note: $("tr-note").value,
        timeout_s: Number($("tr-timeout").value) || 60 };
      for (const [key, input] of [["language", "tr-language"], ["workflow", "tr-workflow"], ["to_worker", "tr-worker"]]) {
        const v = $(input).value.trim();
        if (v) body[key] = v;
      }
      const t = await api("POST", `/v1/cases/${encodeURIComponent(id)}/warm-transfer`, body);
      ctx.onTransfer(t);
      $("transfer-dlg").close();
      status("Transfer requested: you stay with the resident until the next person accepts.");
      e.target.reset();
    });
  });
  $("transfer-cancel").addEventListener("click", async () => {
    const entry = ctx.currentEntry();
    if (!entry) return;
    try {
      await api("DELETE", `/v1/cases/${encodeURIComponent(entry.case.id)}/warm-transfer`);
    } catch (e) { showError(e.message); }
  });

  $("handback-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      const c = await api("POST", `/v1/cases/${encodeURIComponent(id)}/handback`,
        { reason: $("hb-reason").value, note: $("hb-note").value });
      ctx.state.cases.get(id).case = c;
      $("handback-dlg").close();
      ctx.renderCaseMeta();
      ctx.renderCases();
      status("Handed back to the AI. If it needs a person again it comes back to the queue, and it cannot be handed back a second time.");
      e.target.reset();
    });
  });

  $("close-form").addEventListener("submit", (e) => {
    e.preventDefault();
    caseAction(e.target, async (id) => {
      const verdict = document.querySelector('input[name="verdict"]:checked').value;
      const opt = $("cl-disposition").selectedOptions[0];
      if (!opt) throw new Error("Choose a disposition (config/workspace.yaml lists them).");
      const body = { status: opt.dataset.status, code: opt.value, note: $("cl-note").value };
      if (verdict) body.ai_verdict = verdict;
      const c = await api("POST", `/v1/cases/${encodeURIComponent(id)}/close`, body);
      const entry = ctx.state.cases.get(id);
      entry.case = c;
      const hold = (ctx.state.workspace && ctx.state.workspace.wrapup_capacity_s) || 0;
      if (hold > 0) caseClosedHere(entry, ctx.routerNow(), hold);
      $("close-dlg").close();
      ctx.renderCaseMeta();
      ctx.renderCases();
      status(`Case closed: ${c.state}, ${opt.textContent}${verdict ? ` (AI was ${verdict})` : ""}.`);
      e.target.reset();
    });
  });
}
