// Live video, captions, robot controls and the emergency stop of the desk and the remote
// worker page (WebRTC; docs/telepresence.md). Wired by desk.js through initMedia(context):
// context = {state, send, refreshPacket, loadWriteLanguages, languageSlip, writeLang, surface}.
import { $, el, showError } from "/static/shared/dom.js";
import { api } from "/static/shared/api.js";

let ctx = null;

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
  estop_reset: { type: "estop_reset" },
};
const KEYS = { ArrowUp: "forward", ArrowDown: "back", ArrowLeft: "left", ArrowRight: "right" };

const media = {
  caseId: null,        // case the session belongs to
  session: null,
  pc: null,
  local: null,         // MediaStream from getUserMedia
  camera: null,        // Promise of the MediaStream (or the Error), asked for at startMedia
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
  const entry = ctx.state.cases.get(ctx.state.current);
  if (!entry) return null;
  const c = entry.case;
  return c.state === "connected" && c.device && c.assigned_worker === ctx.state.me.subject ? c : null;
}

export function renderMedia() {
  const c = mediaCase();
  $("media").hidden = !c;
  if (media.caseId && (!c || c.id !== media.caseId)) {
    const entry = ctx.state.cases.get(media.caseId);
    // The router already ended the session with both sides: no bye from here.
    if (!entry || entry.case.state !== "connected") {
      endMedia("The case is no longer connected to you.", false);
    } else if (entry.case.assigned_worker !== ctx.state.me.subject) {
      endMedia(`The case is now with ${entry.case.assigned_worker}.`, false);
    }
  }
  // Video starts by itself on the remote worker page, and on any desk for a video case that
  // came by transfer (the receiver sees the resident at once).
  if (c && (ctx.surface === "telepresence" || (c.channel === "video" && c.transfers > 0))
      && !media.pc && !media.autoStarted.has(c.id)) {
    media.autoStarted.add(c.id);  // once: after "End video" the worker starts it again
    setTimeout(startMedia, 0);
  }
  const live = !!media.pc && c && c.id === media.caseId;
  $("media-start").disabled = !!media.pc;
  $("media-end").disabled = !live;
  const devOpen = !!(media.device && media.device.readyState === "open");
  for (const b of document.querySelectorAll("#robot-controls button")) b.disabled = !devOpen;
  $("estop-reset").disabled = !devOpen;
  if (!live) $("estop-banner").hidden = true;
  $("caption-form").querySelector("button").disabled = !(media.captions && media.captions.readyState === "open");
}

// Steps of a session's set-up as performance marks ("baton-media:<step>"): the browser's
// performance timeline, read by benchmarks/telepresence.py to split the first frame's time.
function markStep(step) {
  try { performance.mark(`baton-media:${step}`); } catch (e) { /* marks are diagnostics */ }
}

function mediaStatus(text) { $("media-status").textContent = text; }

export function mediaFailed(message) {
  endMedia(`Video failed: ${message}`);
}

function startMedia() {
  const c = mediaCase();
  if (!c || media.pc) return;
  media.caseId = c.id;
  mediaStatus("Asking the router for a session…");
  $("media-start").disabled = true;
  // The camera starts while the router sets up the session (a device's first start takes
  // hundreds of ms): it is off the first frame's critical path.
  media.camera = openCamera();
  markStep("start");
  if (!ctx.send({ type: "signal_start", case_id: c.id })) {
    releaseCamera(media.camera);
    media.caseId = null; media.camera = null; renderMedia();
  }
}

// Resolves to the MediaStream, or to the Error (no camera, denied, insecure page).
function openCamera() {
  try {
    return navigator.mediaDevices.getUserMedia({ video: true, audio: true }).catch((e) => e);
  } catch (e) {
    return Promise.resolve(e);
  }
}

// A camera asked for by a session that ended before it was used is stopped when it arrives.
function releaseCamera(camera) {
  if (camera) camera.then((s) => { if (s instanceof MediaStream) for (const t of s.getTracks()) t.stop(); });
}

function sendSignal(signal) {
  if (media.caseId) ctx.send({ type: "signal", case_id: media.caseId, signal });
}

export async function onSignalSession(msg) {
  if (msg.case_id !== media.caseId || media.pc) return;
  markStep("session");
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
    if (s === "connected") { markStep("connected"); media.retries = 0; mediaStatus(`Live with ${msg.device}.`); }
    else if (s === "failed" && media.retries < ICE_RETRIES) {
      // A new session: the device replaces its peer (fresh ICE), the case keeps going.
      const caseId = media.caseId, attempt = ++media.retries;
      endMedia(`The connection failed; reconnecting (attempt ${attempt} of ${ICE_RETRIES})…`);
      setTimeout(() => { if (ctx.state.current === caseId) startMedia(); }, 500 * attempt);
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
    const camera = media.camera || openCamera();
    media.camera = null;
    const got = await camera;
    markStep("camera");
    if (media.pc !== pc) { releaseCamera(camera); return; }
    if (got instanceof MediaStream) {
      media.local = got;
    } else {
      mediaStatus(`No camera or microphone (${got && got.message}): receiving only.`);
      media.local = null;
    }
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
    markStep("offer");
  } catch (e) {
    mediaFailed(e.message);
  }
}

export async function onSignal(msg) {
  const pc = media.pc;
  if (!pc || msg.case_id !== media.caseId) return;
  if (msg.session && media.session && msg.session !== media.session) return;
  const sig = msg.signal || {};
  try {
    if (sig.type === "answer") {
      markStep("answer");
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

export function endMedia(text, sayBye = true) {
  if (media.pc) {
    if (sayBye) sendSignal({ type: "bye", reason: "closed" });
    media.pc.onconnectionstatechange = null;
    media.pc.close();
  }
  if (media.local) for (const t of media.local.getTracks()) t.stop();
  releaseCamera(media.camera);
  for (const id of ["remote-video", "local-video"]) $(id).srcObject = null;
  Object.assign(media, { caseId: null, session: null, pc: null, local: null, camera: null, captions: null,
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
  ctx.loadWriteLanguages();
  const language = $("caption-lang").value || ctx.writeLang.value || undefined;
  const slip = language && ctx.languageSlip(text, language);
  if (slip) { showError(slip); $("caption-lang").focus(); return false; }
  api("POST", `/v1/cases/${encodeURIComponent(id)}/messages`, { text, language })
    .then(() => ctx.refreshPacket(id))
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
  // The e-stop latches on the device: the banner stays until the device reports it reset.
  $("estop-banner").hidden = !s.estop;
  $("estop-text").textContent = s.estop ? `Reason: ${s.estop_reason || "latched"}.` : "";
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

export function initMedia(context) {
  ctx = context;
  $("media-start").addEventListener("click", startMedia);
  $("media-end").addEventListener("click", () => endMedia("You ended the video."));
  $("estop-reset").addEventListener("click", () => robotCommand("estop_reset"));
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
  // The remote worker's page exists for video: warm the browser's WebRTC stack while the
  // worker waits for a case.
  if (ctx.surface === "telepresence") setTimeout(warmWebRTC, 0);
}

// The browser's first call pays its WebRTC start-up (codec, DTLS, ICE machinery: several
// hundred ms on the project's 2-core machine, the first sessions' first-frame tail in
// docs/benchmarks.md). One loopback call inside this page — a canvas track, two peer
// connections, nothing leaves the machine — pays it before a resident is waiting. Ends at the
// first decoded frame or after 3 s; never throws. The device's side warms itself
// (edge/webrtc/warmup.py).
let warmed = false;
export function warmWebRTC() {
  if (warmed || !window.RTCPeerConnection) return;
  warmed = true;
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  const canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 240 });
  const g = canvas.getContext("2d");
  const paint = () => { g.fillStyle = `hsl(${(performance.now() / 10) % 360}, 60%, 50%)`; g.fillRect(0, 0, 320, 240); };
  paint();
  const stream = canvas.captureStream(15);
  const painter = setInterval(paint, 66);
  const video = Object.assign(document.createElement("video"), { muted: true, playsInline: true });
  let over = false;
  const done = (outcome) => {
    if (over) return;
    over = true;
    markStep(outcome === "frame" ? "warmed" : "warm-failed");
    clearInterval(painter);
    clearTimeout(limit);
    for (const t of stream.getTracks()) t.stop();
    a.close(); b.close();
    video.srcObject = null;
  };
  const limit = setTimeout(() => done("timeout"), 3000);
  a.onicecandidate = (e) => { if (e.candidate) b.addIceCandidate(e.candidate).catch(() => {}); };
  b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate).catch(() => {}); };
  b.ontrack = (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => {});
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => done("frame"));
  };
  for (const t of stream.getTracks()) a.addTrack(t, stream);
  (async () => {
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
  })().catch(() => done("error"));
}

