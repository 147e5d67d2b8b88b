// Emergency tickets: the procedure's steps and who checked them, deadlines with countdowns, the
// escalation level; acknowledging a ticket stops its escalation.

import { html, useEffect, useState } from '../../vendor/htm-preact.module.js';
import { api } from '../api.js';
import { Countdown, dateTime, Severity, since } from '../common.js';
import { code, nm, t } from '../i18n.js';
import { Steps } from '../steps.js';
import { nextDeadline, overdue } from '../store.js';

const CAN_WORK = ['control_room', 'supervisor', 'admin'];

function List({ store }) {
  const rank = { critical: 0, major: 1, warning: 2, minor: 3, info: 4 };
  // overdue first, then the most severe, then the newest
  const rows = [...store.tickets.values()].sort((a, b) => (overdue(b) - overdue(a)) || ((rank[a.severity] ?? 5) - (rank[b.severity] ?? 5))
    || (Date.parse(b.opened_at) - Date.parse(a.opened_at)));
  if (!rows.length) return html`<p class="muted">${t('no_items')}</p>`;
  return html`<table class="grid">
    <thead><tr><th scope="col">#</th><th scope="col">${t('severity')}</th><th scope="col">${t('title')}</th>
      <th scope="col">${t('location')}</th><th scope="col">${t('state')}</th><th scope="col">${t('escalation')}</th>
      <th scope="col">${t('deadlines')}</th><th scope="col">${t('steps_done')}</th></tr></thead>
    <tbody>${rows.map((tk) => {
      const next = nextDeadline(tk);
      return html`<tr key=${tk.id} data-testid="ticket-row" data-ticket-id=${tk.id} data-state=${tk.state} class=${overdue(tk) ? 'row-overdue' : ''}>
        <td><a href=${`#/tickets/${tk.id}`}>#${tk.id}</a></td>
        <td><${Severity} value=${tk.severity} /></td>
        <td><a href=${`#/tickets/${tk.id}`}>${nm(tk.title)}</a><div class="muted small">${since(tk.opened_at)}</div></td>
        <td>${nm(tk.location_name) || tk.location || ''}</td>
        <td data-testid="ticket-state">${t(`ticket_state_${tk.state}`)}</td>
        <td>${tk.escalation_level ? code(tk.escalation_level) : '—'}</td>
        <td>${next ? html`${t(next.key === 'ack_by' ? 'ack_by_k' : next.key)}: <${Countdown} at=${next.at} />` : '—'}</td>
        <td>${tk.steps_total - tk.steps_pending}/${tk.steps_total}</td>
      </tr>`;
    })}</tbody>
  </table>`;
}

function Detail({ store, id, role }) {
  const ticket = store.details.get(id);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!ticket) store.loadTicket(id).then(() => store.changed()).catch((err) => setError(err.message));
  }, [id, ticket === undefined]);
  if (!ticket) return error ? html`<p class="error" role="alert">${t('error')}: ${error}</p>` : html`<p class="muted">…</p>`;
  const update = (tk) => { store.putTicket(tk); store.changed(); };
  const take = async () => {
    setBusy(true);
    setError('');
    try { update(await api(`/tickets/${ticket.id}/acknowledge`, { method: 'POST' })); } catch (err) { setError(err.message); store.refreshTicket(ticket.id); } finally { setBusy(false); }
  };
  const deadlines = Object.entries(ticket.deadlines || {}).sort((a, b) => Date.parse(a[1]) - Date.parse(b[1]));
  return html`<article data-testid="ticket-detail" data-ticket-id=${ticket.id} data-state=${ticket.state} aria-labelledby="ticket-title">
    <a href="#/tickets">← ${t('back')}</a>
    <h2 id="ticket-title"><${Severity} value=${ticket.severity} /> #${ticket.id} ${nm(ticket.title)}</h2>
    <dl class="facts">
      <dt>${t('state')}</dt><dd data-testid="ticket-state">${t(`ticket_state_${ticket.state}`)}${ticket.acknowledged_by ? ` · ${ticket.acknowledged_by} ${dateTime(ticket.acknowledged_at)}` : ''}</dd>
      <dt>${t('location')}</dt><dd>${nm(ticket.location_name) || '—'}</dd>
      <dt>${t('escalation')}</dt><dd data-testid="escalation">${ticket.escalation_level ? code(ticket.escalation_level) : '—'}</dd>
      <dt>${t('first_responder')}</dt><dd>${ticket.first_responder || '—'}</dd>
      <dt>${t('opened')}</dt><dd>${dateTime(ticket.opened_at)} (${ticket.opened_by})</dd>
    </dl>
    ${ticket.state === 'open' && CAN_WORK.includes(role) && html`<button type="button" data-testid="ticket-ack" disabled=${busy}
      onClick=${take}>${t('acknowledge')}</button>`}
    ${error && html`<p class="error" role="alert">${t('error')}: ${error}</p>`}
    <h3>${t('deadlines')}</h3>
    <ul class="deadlines">${deadlines.map(([k, at]) => html`<li>${t(k === 'ack_by' ? 'ack_by_k' : k)}: ${dateTime(at)}
      ${k === 'ack_by' && ticket.acknowledged_at ? html` <span class="ok">✓</span>` : html` <${Countdown} at=${at} />`}</li>`)}</ul>
    <h3>${t('steps')}</h3>
    <${Steps} ticket=${ticket} canWork=${CAN_WORK.includes(role)} onDone=${update} />
    <h3>${t('events')}</h3>
    <ol class="events">${(ticket.events || []).map((e) => html`<li>${dateTime(e.at)} · ${e.actor === 'system' ? t('system') : e.actor} · ${code(`ev_${e.kind}`) === `ev_${e.kind}` ? e.kind : code(`ev_${e.kind}`)}${e.detail?.step ? ` (${e.detail.step})` : ''}</li>`)}</ol>
  </article>`;
}

export function Tickets({ store, route, role }) {
  const id = Number(route[1]);
  return html`<section aria-labelledby="tickets-title">
    <h2 id="tickets-title" class=${id ? 'sr-only' : ''}>${t('nav_tickets')}</h2>
    ${id ? html`<${Detail} store=${store} id=${id} role=${role} />` : html`<${List} store=${store} />`}
  </section>`;
}
