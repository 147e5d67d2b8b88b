// The REST client: the token lives in sessionStorage (gone when the tab closes), never in a URL.
// When the server answers 401 (the token expired or was revoked) the request waits for the user to
// log in again in the overlay and is then sent again: the page under the overlay stays as it was,
// so nothing the user typed is lost.

import { nm } from './i18n.js';

const KEY = 'patrol.session';
const listeners = new Set();
let waiting = null; // {promise, resolve} while the login overlay is up

export class ApiError extends Error {
  constructor(status, body) {
    // the server's own bilingual message when it gives one (a refused ticket rule), else its detail
    super(body?.message?.zh ? nm(body.message) : typeof body?.detail === 'string' ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}

function expired(s) { return !s || (s.expires_at && Date.parse(s.expires_at) <= Date.now()); }

/** Forget a token the server refused; the next request asks the user to log in again. */
export function dropSession(token) { if (!token || session()?.token === token) sessionStorage.removeItem(KEY); }

/** Listeners hear 'login-needed' (show the overlay) and 'logged-in'. */
export function onSession(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function tell(what) { listeners.forEach((fn) => fn(what)); }

export function loginNeeded() { return waiting !== null || expired(session()); }

/** Resolves once the user has logged in again (the overlay calls login()). */
export function waitForLogin() {
  if (!waiting) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    waiting = { promise, resolve };
    tell('login-needed');
  }
  return waiting.promise;
}

export async function login(username, password) {
  const res = await fetch('/api/v1/auth/token', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body);
  const s = { token: body.access_token, expires_at: body.expires_at, role: body.role, username };
  const me = await fetch('/api/v1/auth/me', { headers: { authorization: `Bearer ${s.token}` } });
  if (me.ok) s.user = await me.json();
  sessionStorage.setItem(KEY, JSON.stringify(s));
  const w = waiting;
  waiting = null;
  tell('logged-in');
  if (w) w.resolve(s);
  return s;
}

export async function logout() {
  const s = session();
  sessionStorage.removeItem(KEY);
  if (s) await fetch('/api/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${s.token}` } }).catch(() => {});
  location.reload();
}

/** GET/POST under /api/v1. `json` is sent as JSON, `form` (FormData) as multipart. */
export async function api(path, { method, json, form } = {}) {
  method = method || (json !== undefined || form !== undefined ? 'POST' : 'GET');
  for (;;) {
    let s = session();
    if (expired(s)) s = await waitForLogin();
    const headers = { authorization: `Bearer ${s.token}` };
    let body;
    if (json !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(json); }
    if (form !== undefined) body = form;
    const res = await fetch(`/api/v1${path}`, { method, headers, body });
    if (res.status === 401) {
      // only this token is over: one sent before a new login must not log the new one out
      if (session()?.token === s.token) { sessionStorage.removeItem(KEY); await waitForLogin(); }
      continue;
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
}

/** Every page of a paged list (items + next_before_id), up to `max` items. */
export async function all(path, max = 1000) {
  const items = [];
  let before = null;
  while (items.length < max) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api(`${path}${sep}limit=200${before ? `&before_id=${before}` : ''}`);
    items.push(...page.items);
    if (!page.next_before_id) break;
    before = page.next_before_id;
  }
  return items;
}

/** Sends the user back to the login overlay when the token's own expiry passes, even if idle. */
export function watchExpiry() {
  setInterval(() => { if (!waiting && session() && expired(session())) waitForLogin(); }, 5000);
}
