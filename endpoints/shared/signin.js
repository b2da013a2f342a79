// The one sign-in of the pages: a token from the link's #token=… fragment (removed from the
// address bar at once) or this tab's session, checked against /v1/me; a role outside
// `roles` is refused with a sentence saying who the page is for.
import { api, setToken } from "./api.js";

export function savedToken(key) {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  return fromHash || sessionStorage.getItem(key);
}

export async function signIn(key, token, { roles = null, pageFor = "" } = {}) {
  setToken(token);
  let me;
  try {
    me = await api("GET", "/v1/me");
  } catch (e) {
    setToken(null);
    sessionStorage.removeItem(key);
    throw new Error(`Sign-in failed: ${e.message}`);
  }
  if (roles && !roles.includes(me.role)) {
    setToken(null);
    sessionStorage.removeItem(key);
    throw new Error(`Sign-in failed: ${me.subject} is a ${me.role}; ${pageFor}`);
  }
  sessionStorage.setItem(key, token);
  if (location.hash.includes("token=")) history.replaceState(null, "", location.pathname);
  return me;
}

export function signOut(key) {
  sessionStorage.removeItem(key);
  setToken(null);
  location.reload();
}
