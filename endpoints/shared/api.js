// The one REST client of the pages: bearer token from the sign-in, JSON in and out, and an
// ApiError carrying the router's message (its error bodies say what to do) and status.
let token = null;

// Under several routers (docs/scale-out.md) a page is opened inside its partition,
// /p/<partition>/desk: its REST calls and socket then go to /p/<partition>/v1/..., which any
// router serves (forwarded or relayed to the partition's leader). A single router: "".
export const BASE = (location.pathname.match(/^\/p\/[^/]+(?=\/)/) || [""])[0];

export function setToken(t) { token = t; }
export function getToken() { return token; }

export class ApiError extends Error {
  constructor(message, status, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

export async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path.startsWith("/v1/") ? BASE + path : path, init);
  } catch (e) {
    throw new ApiError(`${method} ${path}: the router cannot be reached (${e.message})`, 0, null);
  }
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const why = data && (data.message || (typeof data.detail === "string" && data.detail));
    throw new ApiError(why || `${method} ${path}: HTTP ${r.status}`, r.status, data);
  }
  return data;
}

// For callers that branch on the answer rather than throw: {ok, status, data, message}.
export async function attempt(promise) {
  try {
    return { ok: true, status: 200, data: await promise, message: "" };
  } catch (e) {
    return { ok: false, status: e.status || 0, data: e.data || null, message: e.message };
  }
}
