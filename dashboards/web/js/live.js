// The live feed (WS /api/v1/live): the token goes in the first message, never in the URL.
// Every (re)connection is followed by a resync from the REST API (onHello), so an event missed while
// the connection was down is never missing from the screen: the lists are read again and the events
// that arrived meanwhile are applied on top. Reconnects back off from 0.5 s to 10 s.

import { api, dropSession, session, waitForLogin } from './api.js';

const EXPIRED = 4401;
const REVOKED = 4403;
export const WATCHERS = ['control_room', 'supervisor', 'manager', 'admin']; // roles the live feed serves

export class LiveFeed {
  constructor({ site, onEvent, onHello, onState }) {
    Object.assign(this, { site, onEvent, onHello, onState });
    this.delay = 500;
    this.stopped = false;
    this.ws = null;
  }

  start() { this.connect(); }

  stop() { this.stopped = true; this.ws?.close(1000); }

  state(name, detail = '') { this.onState?.(name, detail); }

  hello() {
    this.delay = 500;
    this.state('open');
    this.onHello?.();
  }

  connect() {
    if (this.stopped) return;
    const s = session();
    if (!s) { waitForLogin().then(() => this.connect()); return; }
    if (!WATCHERS.includes(s.role)) { this.state('forbidden'); return; }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live?site=${encodeURIComponent(this.site)}`);
    this.ws = ws;
    this.state('connecting');
    // batch: events come in arrays (what waited on the server goes in one frame)
    ws.onopen = () => ws.send(JSON.stringify({ token: s.token, batch: true }));
    ws.onmessage = (m) => {
      let event;
      try { event = JSON.parse(m.data); } catch { return; }
      for (const e of Array.isArray(event) ? event : [event]) {
        if (e.type === 'hello') this.hello();
        else if (e.type === 'gap') this.onHello?.(); // the server dropped events for us: read the lists again
        else this.onEvent(e);
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.stopped) return;
      if (e.code === EXPIRED) { // log in again, then reconnect (and resync); a newer login: just reconnect
        this.state('closed', e.reason);
        if (session()?.token !== s.token) { this.connect(); return; }
        dropSession(s.token);
        waitForLogin().then(() => this.connect());
        return;
      }
      if (e.code === REVOKED) {
        // revoked (a logout elsewhere, a new password: /auth/me answers 401 and the login opens) or a
        // role that may not watch (an engineer: the lists stay, without live updates)
        this.state('forbidden', e.reason);
        api('/auth/me').then((me) => { if (WATCHERS.includes(me.role)) this.connect(); }).catch(() => {});
        return;
      }
      this.state('closed');
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, 10000);
      setTimeout(() => this.connect(), wait);
    };
  }
}
