// Consult during a warm transfer (router/service/core/warm.py): the two workers write to each
// other through the router — while the transfer is offered to the next person (or names
// them) and after they accepted. Both desks show the thread; the resident never sees it.
// Messages appear when the router echoes them ("consult" socket messages), so what is shown
// went through the router.
import { $, el, showError } from "/static/shared/dom.js";
import { api } from "/static/shared/api.js";

const consult = { caseId: null, with: null, messages: [], whoami: null, clock: null };
const me = () => consult.whoami().subject;

// ``whoami`` returns the signed-in {subject, role}; ``clock`` formats a router timestamp.
export function initConsult(whoami, clock) {
  consult.whoami = whoami;
  consult.clock = clock;
  $("consult-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("consult-text").value.trim();
    if (!text || !consult.caseId) return;
    const button = e.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", `/v1/cases/${encodeURIComponent(consult.caseId)}/consult`, { text });
      $("consult-text").value = "";
    } catch (err) {
      showError(`Consult not sent: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

// Open (or keep) the thread about ``caseId`` with colleague ``other``.
export function openConsult(caseId, other) {
  if (!other || other === me()) return;
  if (consult.caseId !== caseId) consult.messages = [];
  consult.caseId = caseId;
  consult.with = other;
  render();
}

// The thread ends for this desk (the transfer returned, was cancelled or declined).
export function endConsult(caseId) {
  if (consult.caseId !== caseId) return;
  consult.caseId = null;
  consult.with = null;
  consult.messages = [];
  render();
}

export function onConsult(msg) {
  const other = msg.from === me() ? msg.to : msg.from;
  openConsult(msg.case_id, other);
  if (!consult.messages.some((m) => m.id === msg.id)) consult.messages.push(msg);
  render();
}

function render() {
  $("consult").hidden = !consult.caseId;
  if (!consult.caseId) return;
  $("consult-about").textContent = `With ${consult.with} about case ${consult.caseId}. `
    + "Only the two of you see this; the resident does not.";
  $("consult-log").replaceChildren(...consult.messages.map((m) => {
    const li = el("li", null, m.from === me() ? "mine" : "theirs");
    li.append(el("strong", m.from === me() ? "You" : m.from),
      ` (${consult.clock(m.at)}): `, m.text);
    return li;
  }));
  $("consult-none").hidden = consult.messages.length > 0;
}
