// The resident's screen (docs/edge.md "The resident's screen"). Renders the snapshots the
// edge pushes over /ws; sends the resident's touches back. Everything of a visit is wiped
// when the edge starts a new one (snapshot.visit changes).
"use strict";

const $ = (id) => document.getElementById(id);
const VIEWS = ["idle", "waiting", "person", "transfer", "end", "emergency"];
const page = { ws: null, snap: null, visit: null, pc: null, scale: 1, retry: 0 };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text != null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, k) => (k in values ? String(values[k]) : `{${k}}`));
}

function send(msg) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify(msg));
}

// --- rendering ----------------------------------------------------------------------------

function render(s) {
  if (page.visit !== null && s.visit !== page.visit) wipe();
  page.visit = s.visit;
  page.snap = s;
  const t = s.strings;
  document.documentElement.lang = s.language;
  document.title = t.welcome;
  document.body.dataset.state = s.state;

  $("langs").setAttribute("aria-label", t.language);
  $("langs").replaceChildren(...s.languages.map((l) => {
    const b = el("button", l.name);
    b.type = "button";
    b.lang = l.code;
    b.dataset.lang = l.code;
    b.setAttribute("aria-current", String(s.chosen && l.code === s.language));
    return b;
  }));
  $("size-label").textContent = t.text_size;
  $("contrast").textContent = t.contrast;

  const shown = {
    idle: ["idle"], ai: [], waiting: ["waiting"], person: ["person"], transfer: ["transfer"],
    end: ["end"], emergency: ["emergency"],
  }[s.state] || [];
  for (const v of VIEWS) $(v).hidden = !shown.includes(v);
  $("talk").hidden = s.state === "end";

  // idle
  $("welcome-h").textContent = t.welcome;
  $("choose").textContent = t.choose_language;
  $("welcomes").replaceChildren(...s.languages.filter((l) => l.code !== s.language).map((l) => {
    const li = el("li", l.welcome); li.lang = l.code; return li;
  }));

  // waiting
  $("wait-h").textContent = t.connecting;
  $("wait-est").textContent = s.wait_s == null ? t.wait_unknown
    : s.wait_s < 60 ? t.wait_soon : fill(t.wait_minutes, { minutes: Math.round(s.wait_s / 60) });
  $("ready-box").hidden = !s.have_ready.length;
  $("ready-h").textContent = t.have_ready;
  $("ready").replaceChildren(...s.have_ready.map((x) => el("li", x)));
  $("keep").textContent = t.keep_talking;

  // person
  const w = s.worker;
  $("who").textContent = w ? `${w.name} · ${w.role}` : "";
  $("worker-video").setAttribute("aria-label", w ? fill(t.video_of, { name: w.name }) : t.conversation);
  $("camera").hidden = !s.camera_on;
  $("camera-text").textContent = fill(t.camera_on, { name: w ? w.name : "" });
  const lastWorker = [...s.lines].reverse().find((l) => l.speaker === "worker");
  $("caption-live").hidden = !lastWorker || !s.video;
  if (lastWorker) { $("caption-live").textContent = lastWorker.text; $("caption-live").lang = lastWorker.lang; }

  // transfer
  $("tr-h").textContent = t.transfer;
  $("tr-detail").textContent = t.transfer_detail;

  // end
  $("thanks-h").textContent = t.thanks;
  $("rate-q").textContent = t.rate;
  $("rating").hidden = s.rating != null;
  $("rated").hidden = s.rating == null;
  $("rated").textContent = t.rated;
  if (!$("stars").children.length) {
    $("stars").replaceChildren(...[1, 2, 3, 4, 5].map((n) => {
      const b = el("button", String(n)); b.type = "button"; b.dataset.score = String(n); return b;
    }));
  }
  $("clears").textContent = s.clears_in_s == null ? "" : fill(t.clears_in, { seconds: s.clears_in_s });
  $("more-time").textContent = t.more_time;
  $("finish").textContent = t.finish;

  // emergency
  const em = s.emergency;
  $("em-h").textContent = t.emergency;
  $("em-text").textContent = em ? em.text : "";
  if (em) $("em-text").lang = em.lang;
  $("em-label").textContent = t.emergency_number;
  $("em-number").textContent = em ? em.number : "";

  // the conversation
  $("conv-h").textContent = t.conversation;
  renderLines(s);
  $("activity").textContent = s.thinking ? t.thinking
    : s.speech && (s.state === "ai" || s.state === "idle") ? t.listening : "";
  $("say-label").textContent = t.type_here;
  $("say-text").placeholder = t.type_here;
  $("say-send").textContent = t.send;
  const person = $("person-btn");
  person.textContent = t.talk_to_person;
  person.hidden = !(s.state === "idle" || s.state === "ai");

  if (!s.video) stopVideo();
}

function renderLines(s) {
  const t = s.strings;
  const list = $("lines");
  const have = new Set([...list.children].map((li) => li.dataset.id));
  const want = new Set(s.lines.map((l) => l.id));
  for (const li of [...list.children]) if (!want.has(li.dataset.id)) li.remove();
  for (const l of s.lines) {
    if (have.has(l.id)) continue;
    const li = el("li", null, l.speaker);
    li.dataset.id = l.id;
    const who = l.speaker === "resident" ? t.you : l.speaker === "ai" ? t.assistant
      : (s.worker ? s.worker.name : "");
    li.append(el("span", who, "spk"));
    const text = el("span", l.text, "text");
    text.lang = l.lang;
    li.append(text);
    if (l.untranslated) {
      const note = el("span", t.untranslated, "note");
      li.append(note);
    }
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
}

// Everything of the previous resident leaves the page: DOM, video, typed text, settings.
function wipe() {
  stopVideo();
  $("lines").replaceChildren();
  $("say-text").value = "";
  $("stars").replaceChildren();
  setScale(1);
  setContrast(false);
}

// --- the worker's video (the edge offers, the page answers) ----------------------------------

async function onOffer(sdp) {
  stopVideo();
  const pc = new RTCPeerConnection({ iceServers: [] });
  page.pc = pc;
  pc.ontrack = (e) => {
    // A loopback link has no network jitter to absorb: play frames as soon as decoded.
    if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
    else if ("playoutDelayHint" in e.receiver) e.receiver.playoutDelayHint = 0;
    const v = $("worker-video");
    if (!v.srcObject) v.srcObject = new MediaStream();
    v.srcObject.addTrack(e.track);
    v.play().catch(() => {});
  };
  await pc.setRemoteDescription({ type: "offer", sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);
    });
  }
  if (page.pc === pc) send({ type: "answer", sdp: pc.localDescription.sdp });
}

function stopVideo() {
  if (page.pc) { page.pc.close(); page.pc = null; }
  const v = $("worker-video");
  if (v.srcObject) {
    for (const tr of v.srcObject.getTracks()) tr.stop();
    v.srcObject = null;
  }
  v.removeAttribute("src");
  v.load();  // no frozen frame of the last worker stays in the element
}

// --- settings -------------------------------------------------------------------------------

function setScale(x) {
  page.scale = Math.min(2, Math.max(0.8, Math.round(x * 10) / 10));
  document.documentElement.style.setProperty("--scale", String(page.scale));
}

function setContrast(on) {
  document.body.classList.toggle("contrast", on);
  $("contrast").setAttribute("aria-pressed", String(on));
}

// --- wiring ---------------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  page.ws = ws;
  ws.onopen = () => { page.retry = 0; $("offline").hidden = true; };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "screen") render(m);
    else if (m.type === "offer") onOffer(m.sdp).catch((err) => console.warn("video", err));
    else if (m.type === "video_off") stopVideo();
    else if (m.type === "error") console.warn("edge:", m.message);
  };
  ws.onclose = () => {
    $("offline").hidden = false;
    stopVideo();
    setTimeout(connect, Math.min(5000, 250 * 2 ** page.retry++));
  };
}

$("langs").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-lang]");
  if (b) send({ type: "language", language: b.dataset.lang });
});
$("size-down").addEventListener("click", () => setScale(page.scale - 0.2));
$("size-up").addEventListener("click", () => setScale(page.scale + 0.2));
$("contrast").addEventListener("click", () => setContrast(!document.body.classList.contains("contrast")));
$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("say-text").value.trim();
  if (!text) return;
  send({ type: "say", text });
  $("say-text").value = "";
});
$("person-btn").addEventListener("click", () => send({ type: "person" }));
$("stars").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-score]");
  if (b) send({ type: "rating", score: Number(b.dataset.score) });
});
$("more-time").addEventListener("click", () => send({ type: "more_time" }));
$("finish").addEventListener("click", () => send({ type: "finish" }));
connect();
