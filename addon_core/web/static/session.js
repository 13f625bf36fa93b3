// The user token: read once from the address bar, kept in memory only, refreshed through
// Clockify's `refreshAddonToken` window message before it expires and after any 401.

const REFRESH_MARGIN_MS = 60_000;
const REFRESH_TIMEOUT_MS = 10_000;

let token = null;
let expiresAt = 0;
let pending = null;
let timer = null;
const listeners = new Set();

function decodeClaims(jwt) {
  const part = jwt.split(".")[1] || "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(text);
}

/** Take the token out of the URL (so it is not kept in history or shown) and remember it. */
export function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const found = url.searchParams.get("auth_token");
  url.searchParams.delete("auth_token");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  if (found) setToken(found);
  return found;
}

function setToken(value) {
  token = value;
  try {
    expiresAt = (decodeClaims(value).exp || 0) * 1000;
  } catch {
    expiresAt = 0;
  }
  schedule();
  for (const listener of listeners) listener(value);
}

function schedule() {
  clearTimeout(timer);
  if (!expiresAt) return;
  const wait = Math.max(expiresAt - Date.now() - REFRESH_MARGIN_MS, 0);
  timer = setTimeout(() => refreshToken().catch(() => {}), wait);
}

export function currentToken() {
  return token;
}

export function expiresInMs() {
  return expiresAt - Date.now();
}

export function onTokenChange(listener) {
  listeners.add(listener);
}

function readMessage(event) {
  if (event.source !== window.parent) return null;
  let data = event.data;
  if (typeof data === "string") {
    try {
      data = JSON.parse(data);
    } catch {
      return null;
    }
  }
  if (!data || typeof data !== "object") return null;
  const name = data.title || data.action;
  const body = data.body ?? data.payload;
  if (name !== "refreshAddonToken") return null;
  if (typeof body === "string") return body;
  if (body && typeof body.token === "string") return body.token;
  return null;
}

window.addEventListener("message", (event) => {
  const fresh = readMessage(event);
  if (fresh) setToken(fresh);
});

/** Ask Clockify for a fresh user token; resolves with it, or rejects after a timeout. */
export function refreshToken() {
  if (pending) return pending;
  pending = new Promise((resolve, reject) => {
    const done = (value) => {
      clearTimeout(giveUp);
      listeners.delete(done);
      pending = null;
      resolve(value);
    };
    const giveUp = setTimeout(() => {
      listeners.delete(done);
      pending = null;
      reject(new Error("Clockify did not renew the session; reload the page"));
    }, REFRESH_TIMEOUT_MS);
    listeners.add(done);
    window.top?.postMessage(JSON.stringify({ action: "refreshAddonToken" }), "*");
  });
  return pending;
}

/** Show a message as a Clockify toast (when framed) and inline. */
export function notify(type, message) {
  if (window.top !== window) {
    window.top.postMessage(JSON.stringify({ action: "toastrPop", payload: { type, message } }), "*");
  }
  const box = document.getElementById("status");
  if (!box) return;
  box.dataset.type = type;
  box.textContent = message;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.hidden = true; }, type === "error" ? 12_000 : 4_000);
}
