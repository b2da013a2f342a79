// The one client of the worker WebSocket (/v1/ws, protocol in router/service/ws.py). The
// token goes in the first message, never in the URL (URLs end up in logs). Reconnects after
// a drop; a refusal (4401/4403) is final and reported.
import { BASE, getToken } from "./api.js";

// Reconnects back off (retryMs doubling to maxRetryMs, with jitter) so a router restart or a
// failover is not met by every page at once; the hello after a reconnect resynchronises.
export function openSocket({ onMessage, onStatus, onRefused, retryMs = 2000, maxRetryMs = 15000 }) {
  const s = { ws: null, timer: null, closed: false, failures: 0 };
  const proto = location.protocol === "https:" ? "wss" : "ws";

  function connect() {
    clearTimeout(s.timer);
    if (s.closed) return;
    onStatus("connecting", "connecting…");
    const ws = new WebSocket(`${proto}://${location.host}${BASE}/v1/ws`);
    s.ws = ws;
    ws.onopen = () => {
      s.failures = 0;
      ws.send(JSON.stringify({ type: "auth", token: getToken() }));
      onStatus("connected", "connected");
    };
    ws.onclose = (e) => {
      if (s.ws !== ws || s.closed) return;
      if (e.code === 4401 || e.code === 4403) {
        onStatus("refused", "refused");
        if (onRefused) onRefused(e.reason || String(e.code));
        return;
      }
      onStatus("reconnecting", `disconnected (${e.reason || e.code}); reconnecting…`);
      const wait = Math.min(maxRetryMs, retryMs * 2 ** s.failures++);
      s.timer = setTimeout(connect, wait * (0.75 + Math.random() / 2));
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      onMessage(msg);
    };
  }

  connect();
  return {
    send(msg) {
      if (!s.ws || s.ws.readyState !== WebSocket.OPEN) return false;
      s.ws.send(JSON.stringify(msg));
      return true;
    },
    close() {
      s.closed = true;
      clearTimeout(s.timer);
      if (s.ws) s.ws.close();
    },
  };
}
