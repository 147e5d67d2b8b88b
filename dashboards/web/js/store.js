// The control room's picture of one site: read whole from the REST API at each (re)connection and
// kept current by the live feed's events. Events that arrive while the lists are being read are held
// and applied after them in order, so the screen ends on the newest state (every change is an event).

import { all, api } from './api.js';

const OPEN_TICKET_STATES = ['open', 'acknowledged'];

export class SiteStore {
  constructor(site, timezone) {
    this.site = site;
    this.timezone = timezone;
    this.announced = new Set(); // critical alarms the banner has told
    this.ticketReads = new Map(); // per ticket: the number of its latest read (an older answer is ignored)
    this.day = null;
    this.alarms = new Map();
    this.tickets = new Map();
    this.details = new Map();
    this.rounds = new Map();
    this.devices = new Map();
    this.lastSeen = new Map();
    this.buildings = [];
    this.checkpoints = new Map();
    this.loaded = false;
    this.error = null;
    this.held = null; // events arriving during a resync
    this.listeners = new Set();
    this.criticalListeners = new Set();
    this.pendingTickets = new Map();
    this.frame = 0;
  }

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  onCritical(fn) { this.criticalListeners.add(fn); return () => this.criticalListeners.delete(fn); }

  changed() {
    if (this.frame) return;
    const run = () => { this.frame = 0; this.listeners.forEach((fn) => fn()); };
    this.frame = document.hidden ? setTimeout(run, 250) : requestAnimationFrame(run);
  }

  q(path) { return `${path}${path.includes('?') ? '&' : '?'}site=${encodeURIComponent(this.site)}`; }

  /** Everything the screens show, read again from the REST API; a resync asked for while one runs
   * runs once more after it (the reconnection may have come after the first one's reads). */
  resync() {
    if (this.syncing) { this.again = true; return this.syncing; }
    this.syncing = (async () => {
      do { this.again = false; await this.read(); } while (this.again);
      this.syncing = null;
    })();
    return this.syncing;
  }

  async read() {
    this.held = this.held || [];
    try {
      this.day = siteDate(this.timezone);
      const [active, unacked, ...rest] = await Promise.all([
        all(this.q('/alarms?state=active')),
        all(this.q('/alarms?acknowledged=false')),
        ...OPEN_TICKET_STATES.map((s) => all(this.q(`/tickets?state=${s}`))),
        all(this.q(`/rounds?since=${this.day}`)), // today in the site's own time zone
        api(`/sites/${encodeURIComponent(this.site)}/devices`),
        all(this.q('/signins?ok=true'), 400),
        api(`/sites/${encodeURIComponent(this.site)}/buildings`),
        this.checkpoints.size ? null : api(`/sites/${encodeURIComponent(this.site)}/checkpoints`),
      ]);
      const [openTickets, takenTickets, rounds, devices, signins, buildings, checkpoints] = rest;
      const alarms = new Map([...active, ...unacked].map((a) => [a.id, a]));
      // a critical alarm nobody acknowledged is told once: one found on opening the screen, raised while the
      // feed was down, or whose event was dropped (a gap)
      for (const a of alarms.values()) if (!this.alarms.has(a.id)) this.announce(a);
      this.alarms = alarms;
      this.tickets = new Map([...openTickets, ...takenTickets].map((tk) => [tk.id, tk]));
      await Promise.all([...this.details.keys()].map((id) => this.loadTicket(id).catch(() => {})));
      this.rounds = new Map(rounds.map((r) => [r.id, r]));
      this.devices = new Map(devices.map((d) => [d.code, d]));
      this.lastSeen = new Map();
      for (const s of signins.slice().reverse()) this.seen(s);
      this.buildings = buildings;
      if (checkpoints) this.checkpoints = new Map(checkpoints.map((c) => [c.code, c]));
      this.loaded = true;
      this.error = null;
    } catch (err) {
      this.error = err;
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.resync(), 5000); // the API restarting: try again, not only at the next reconnection
    } finally {
      const held = this.held;
      this.held = null;
      held.forEach((e) => this.apply(e));
      this.changed();
    }
  }

  /** A new critical alarm, active and not acknowledged, told once: banner and sound. */
  announce(a) {
    if (this.announced.has(a.id) || a.severity !== 'critical' || !a.active || a.acknowledged || a.snoozed_until) return;
    this.announced.add(a.id);
    this.criticalListeners.forEach((fn) => fn(a));
  }

  /** An alarm as an answer or an event gives it: kept while active or unacknowledged. */
  putAlarm(a) {
    if (!a.active && a.acknowledged) this.alarms.delete(a.id);
    else this.alarms.set(a.id, { ...this.alarms.get(a.id), ...a });
  }

  /** A live event: applied now, or held while a resync reads the lists. */
  apply(event) {
    if (event.site && event.site !== this.site) return;
    if (this.held) { this.held.push(event); return; }
    const handler = {
      alarm: () => this.alarm(event), ticket: () => this.ticket(event), round: () => this.round(event),
      signin: () => this.seen(event), device_status: () => this.device(event),
    }[event.type];
    if (handler) { handler(); this.changed(); }
  }

  alarm(e) {
    const known = this.alarms.get(e.id);
    const { type, change, at, quiet, location, ...fields } = e;
    const alarm = { ...fields, location_name: location ?? known?.location_name };
    this.putAlarm(alarm);
    if ((change === 'raised' || change === 'rose') && !quiet) {
      if (change === 'rose') this.announced.delete(e.id); // risen to critical: told again
      this.announce({ ...known, ...alarm });
    }
  }

  ticket(e) {
    const known = this.tickets.get(e.id);
    if (!OPEN_TICKET_STATES.includes(e.state)) this.tickets.delete(e.id); // closed: off the list at once
    else if (known) {
      const { type, change, at, actor, detail, recipients, location, ...fields } = e;
      this.tickets.set(e.id, { ...known, ...fields });
    }
    this.refreshTicket(e.id);
  }

  /** A ticket's change is read back whole (steps, who checked them), at most every 300 ms per ticket. */
  refreshTicket(id) {
    if (this.pendingTickets.has(id)) return;
    this.pendingTickets.set(id, setTimeout(async () => {
      this.pendingTickets.delete(id);
      await this.loadTicket(id).catch(() => {});
      this.changed();
    }, 300));
  }

  /** Reads a ticket; an answer older than a later read of the same ticket is ignored. */
  async loadTicket(id) {
    const n = (this.ticketReads.get(id) || 0) + 1;
    this.ticketReads.set(id, n);
    const detail = await api(`/tickets/${id}`);
    if (this.ticketReads.get(id) !== n) return this.details.get(id);
    this.putTicket(detail);
    return detail;
  }

  putTicket(detail) {
    if (OPEN_TICKET_STATES.includes(detail.state)) this.tickets.set(detail.id, detail);
    else this.tickets.delete(detail.id);
    this.details.set(detail.id, detail);
  }

  round(e) {
    const known = this.rounds.get(e.id) || {};
    const { type, change, at, actor, missed, ...fields } = e;
    const points = (fields.points || []).map((p) => ({ ...(known.points || []).find((k) => k.checkpoint === p.checkpoint), ...p }));
    this.rounds.set(e.id, { ...known, ...fields, points: points.length ? points : known.points || [] });
  }

  seen(s) {
    if (!s.guard || !s.ok) return;
    const known = this.lastSeen.get(s.guard);
    if (known && Date.parse(known.at) > Date.parse(s.tapped_at)) return;
    this.lastSeen.set(s.guard, { at: s.tapped_at, checkpoint: s.checkpoint, name: s.checkpoint_name, guard_name: s.guard_name });
  }

  device(e) {
    const known = this.devices.get(e.device);
    if (!known) return;
    this.devices.set(e.device, {
      ...known, online: e.online, status_at: e.status_at,
      ...(e.battery_pct !== undefined && { battery_pct: e.battery_pct }), ...(e.rssi !== undefined && { rssi: e.rssi }),
      ...(e.firmware !== undefined && { firmware: e.firmware }),
    });
  }
}

/** The site's calendar date now (YYYY-MM-DD): "today" is the site's, whatever the browser's zone. */
export function siteDate(timezone) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: timezone || undefined, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

/** The deadline the list shows: acknowledge by, until it is; then resolve by, if the procedure has one.
 * (Notify-engineering and on-site deadlines are shown in the ticket, with the escalation they drive.) */
export function nextDeadline(ticket) {
  const d = ticket.deadlines || {};
  if (!ticket.acknowledged_at && d.ack_by) return { key: 'ack_by', at: d.ack_by };
  return d.resolve_by ? { key: 'resolve_by', at: d.resolve_by } : null;
}

export function overdue(ticket) {
  const next = nextDeadline(ticket);
  return next !== null && Date.parse(next.at) < Date.now();
}
