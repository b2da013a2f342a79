// Getting a person's attention for something that cannot wait (an offer, an urgent alert):
// a Web Audio chime, a browser notification (after the person granted it), and a flashing
// title while the page is in the background. Browsers hold audio until the page was touched
// once and ask before notifications; each function reports what actually happened.
let ctx = null;

export function chime(times = 2, freq = 880) {
  try {
    ctx = ctx || new AudioContext();
    ctx.resume().catch(() => {});
    for (let i = 0; i < times; i++) {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.frequency.value = freq;
      g.gain.value = 0.2;
      o.connect(g).connect(ctx.destination);
      const at = ctx.currentTime + i * 0.45;
      o.start(at);
      o.stop(at + 0.3);
    }
    return ctx.state === "running" ? "playing" : "requested";
  } catch (e) {
    return "unavailable";
  }
}

export function notificationState() {
  return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
}

export async function askNotifications() {
  if (typeof Notification === "undefined") return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  try { return await Notification.requestPermission(); } catch { return "denied"; }
}

export function notify(title, body, tag, onClick) {
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return false;
  try {
    const n = new Notification(title, { body, tag, requireInteraction: true });
    n.onclick = () => { window.focus(); if (onClick) onClick(); n.close(); };
    return n;
  } catch {
    return false;
  }
}

const flash = { timer: null, base: null };

export function flashTitle(text) {
  if (flash.timer) return;
  flash.base = document.title;
  let on = false;
  document.documentElement.dataset.titleFlash = "on";
  flash.timer = setInterval(() => {
    on = !on;
    document.title = on ? text : flash.base;
  }, 1000);
  document.title = text;
}

export function stopFlash() {
  if (!flash.timer) return;
  clearInterval(flash.timer);
  flash.timer = null;
  document.title = flash.base;
  delete document.documentElement.dataset.titleFlash;
}
