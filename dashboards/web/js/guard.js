// The guard's phone page: my round and my next checkpoint, report a finding with a photo from the
// camera, the tickets assigned to me with the procedure's steps to check off. Big touch targets and
// high contrast for sunlight. A guard's login is their staff code (e.g. G001): the rounds and tickets
// are matched on it. Guards may not watch the live feed: the page reads again every 15 s and after
// every action.

import { html, render, useEffect, useRef, useState } from '../vendor/htm-preact.module.js';
import { all, api, loginNeeded, logout, session, watchExpiry } from './api.js';
import { clock, Countdown, LangSwitch, Login, setZone, Severity, useLoginNeeded, useTick } from './common.js';
import { nm, onLang, t } from './i18n.js';
import { Steps } from './steps.js';

const POLL_MS = 15000;

function me() { return (session()?.username || '').toUpperCase(); }

function currentRound(rounds) {
  const going = rounds.filter((r) => r.state === 'in_progress');
  if (going.length) return going[0];
  const now = Date.now();
  const next = rounds.filter((r) => r.state === 'scheduled' && Date.parse(r.ends_at) > now).sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  return next[0] || null;
}

async function loadAll(site) {
  const since = new Date(Date.now() - 12 * 3600 * 1000).toISOString();
  const [rounds, open, taken] = await Promise.all([
    all(`/rounds?site=${site}&guard=${encodeURIComponent(me())}&since=${encodeURIComponent(since)}`, 200),
    all(`/tickets?site=${site}&state=open`, 200),
    all(`/tickets?site=${site}&state=acknowledged`, 200),
  ]);
  const tickets = [...open, ...taken].sort((a, b) => ((b.first_responder === me()) - (a.first_responder === me())) || (b.id - a.id));
  return { round: currentRound(rounds), tickets };
}

function MyRound({ round, checkpoints }) {
  useTick();
  if (!round) return html`<section class="card" aria-labelledby="round-title"><h2 id="round-title">${t('my_round')}</h2><p class="muted">${t('no_round')}</p></section>`;
  const next = round.points.find((p) => p.checkpoint === round.next_checkpoint);
  return html`<section class="card" aria-labelledby="round-title" data-testid="my-round" data-round-id=${round.id}>
    <h2 id="round-title">${t('my_round')} · ${round.route}</h2>
    <p class="muted">${clock(round.starts_at, false)}–${clock(round.ends_at, false)} · ${t(round.state)} · ${Math.round(round.completion_pct)}%</p>
    ${next && html`<div class="next" data-testid="next-checkpoint">
      <p class="label">${t('next_point')}</p>
      <p class="next-name">${nm(next.name) || nm(checkpoints.get(next.checkpoint)?.name) || next.checkpoint}</p>
      <p>${t('due')} ${clock(next.due_at, false)} · <${Countdown} at=${next.closes_at || next.due_at} /></p>
    </div>`}
    <ol class="points">${round.points.map((p) => html`<li class=${`pt pt-${p.result}`}>
      <span>${nm(p.name) || p.checkpoint}</span><span>${p.signed_at ? `✓ ${clock(p.signed_at, false)}` : t(p.result)}</span></li>`)}</ol>
  </section>`;
}

function Finding({ site, round, checkpoints, categories }) {
  const [preview, setPreview] = useState(null);
  const [sent, setSent] = useState(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    const form = new FormData(e.target);
    form.set('site', site);
    if (!form.get('photos')?.size) form.delete('photos');
    if (round) form.set('round_id', String(round.id));
    setBusy(true);
    setError('');
    try {
      const r = await api('/findings', { method: 'POST', form });
      setSent(r);
      e.target.reset();
      pick(null);
      setPreview(null);
    } catch (err) {
      setError(`${t('error')}: ${err.message}`);
    } finally {
      setBusy(false);
    }
  }
  const [picked, pick] = useState(null); // until the guard picks, the round's next checkpoint
  const location = picked ?? (round?.next_checkpoint || '');
  return html`<section class="card" aria-labelledby="finding-title">
    <h2 id="finding-title">${t('report_finding')}</h2>
    <form onSubmit=${submit} data-testid="finding-form" onfocusin=${() => picked === null && pick(location)}>
      <label for="f-location">${t('location')}</label>
      <select id="f-location" name="location" required value=${location} onChange=${(e) => pick(e.target.value)}>
        <option value="">${t('select')}</option>
        ${[...checkpoints.values()].map((c) => html`<option value=${c.code}>${nm(c.name)}</option>`)}
      </select>
      <label for="f-category">${t('category')}</label>
      <select id="f-category" name="category" required>
        <option value="">${t('select')}</option>
        ${categories.map((c) => html`<option value=${c.code}>${nm(c.name)}</option>`)}
      </select>
      <label for="f-note">${t('note')}</label>
      <textarea id="f-note" name="note" rows="3" required maxlength="1000"></textarea>
      <input id="f-photo" name="photos" type="file" accept="image/*" capture="environment" class="visually-hidden-file"
        onChange=${(e) => setPreview(e.target.files[0] ? URL.createObjectURL(e.target.files[0]) : null)} />
      <label for="f-photo" class="photo-button">${t('take_photo')}</label>
      ${preview && html`<img class="preview" src=${preview} alt=${t('photo')} />`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${sent && html`<p class="ok" role="status" data-testid="finding-sent">${t('finding_sent')} #${sent.ticket_id ?? '—'}</p>`}
      <button type="submit" class="big" disabled=${busy}>${t('submit')}</button>
    </form>
  </section>`;
}

function TicketCard({ ticket, onChanged }) {
  const [detail, setDetail] = useState(null);
  const [open, setOpen] = useState(ticket.first_responder === me());
  useEffect(() => { if (open) api(`/tickets/${ticket.id}`).then(setDetail).catch(() => {}); }, [open, ticket.steps_pending, ticket.state]);
  const mine = ticket.first_responder === me();
  return html`<li class=${`card ticket${mine ? ' mine' : ''}`} data-testid="guard-ticket" data-ticket-id=${ticket.id}>
    <button type="button" class="ticket-head" aria-expanded=${open} onClick=${() => setOpen(!open)}>
      <${Severity} value=${ticket.severity} /> #${ticket.id} ${nm(ticket.title)}
      <span class="muted small">${nm(ticket.location_name)} · ${ticket.steps_total - ticket.steps_pending}/${ticket.steps_total}${mine ? ` · ${t('you')}` : ''}</span>
    </button>
    ${open && detail && html`<${Steps} ticket=${detail} canWork=${true} onDone=${(tk) => { setDetail(tk); onChanged(); }} />`}
  </li>`;
}

function Page() {
  const [sites, setSites] = useState([]);
  const [data, setData] = useState({ round: null, tickets: [] });
  const [checkpoints, setCheckpoints] = useState(new Map());
  const [categories, setCategories] = useState([]);
  const [error, setError] = useState('');
  const site = sites[0]?.code;
  setZone(sites[0]?.timezone);
  const reads = useRef({ busy: false, again: false });
  // one read at a time, none while the login is up (an idle phone must not queue a read every 15 s);
  // asked for during a read, it runs once more after it
  const refresh = () => {
    const r = reads.current;
    if (!site || loginNeeded()) return;
    if (r.busy) { r.again = true; return; }
    r.busy = true;
    loadAll(site).then((d) => { setData(d); setError(''); }).catch((e) => setError(e.message))
      .finally(() => { r.busy = false; if (r.again) { r.again = false; refresh(); } });
  };
  useEffect(() => { api('/sites').then(setSites).catch((e) => setError(e.message)); api('/findings/categories').then(setCategories).catch(() => {}); }, []);
  useEffect(() => {
    if (!site) return undefined;
    api(`/sites/${site}/checkpoints?tagged_only=true`).then((cs) => setCheckpoints(new Map(cs.map((c) => [c.code, c])))).catch(() => {});
    refresh();
    const id = setInterval(refresh, POLL_MS);
    return () => clearInterval(id);
  }, [site]);
  const s = session();
  return html`<div class="guard-app">
    <header class="top guard-top">
      <h1>${t('guard_title')}<span class="who">${s?.username}</span></h1>
      <button type="button" class="ghost" onClick=${refresh} data-testid="refresh">${t('refresh')}</button>
      <${LangSwitch} />
      <button type="button" class="ghost" onClick=${logout}>${t('logout')}</button>
    </header>
    <main id="main">
      ${error && html`<p class="error" role="alert">${t('error')}: ${error}</p>`}
      <${MyRound} round=${data.round} checkpoints=${checkpoints} />
      <section aria-labelledby="tickets-title">
        <h2 id="tickets-title">${t('my_tickets')}</h2>
        ${data.tickets.length === 0 && html`<p class="muted">${t('no_items')}</p>`}
        <ul class="guard-tickets">${data.tickets.map((tk) => html`<${TicketCard} key=${tk.id} ticket=${tk} onChanged=${refresh} />`)}</ul>
      </section>
      ${site && html`<${Finding} site=${site} round=${data.round} checkpoints=${checkpoints} categories=${categories} />`}
    </main>
  </div>`;
}

function App() {
  const [, set] = useState(0);
  useEffect(() => onLang(() => set((n) => n + 1)), []);
  const loginNeeded = useLoginNeeded();
  const [started, setStarted] = useState(session() !== null && !loginNeeded);
  useEffect(() => { if (!loginNeeded) setStarted(true); }, [loginNeeded]);
  if (!started) return html`<${Login} overlay=${false} />`;
  return html`<${Page} />${loginNeeded && html`<${Login} overlay=${true} />`}`;
}

watchExpiry();
render(html`<${App} />`, document.getElementById('app'));
