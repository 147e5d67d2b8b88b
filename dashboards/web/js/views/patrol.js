// Patrol board: today's rounds on time / late / missed, where each guard was last seen, the next
// checkpoint, and missed-point alerts a supervisor closes with a comment.

import { html, useState } from '../../vendor/htm-preact.module.js';
import { api } from '../api.js';
import { clock, Dialog, since } from '../common.js';
import { nm, t } from '../i18n.js';

const CAN_CLOSE = ['supervisor', 'manager', 'admin'];

/** How a round stands for the board: on_time, late, missed, not_started (due, no sign-in yet), in_progress, scheduled. */
export function verdict(r) {
  if (r.state === 'missed' || r.state === 'incomplete') return 'missed';
  if (r.state === 'completed') return r.lateness_s > 0 ? 'late' : 'on_time';
  if (r.state === 'scheduled' && Date.now() > Date.parse(r.starts_at) + (r.grace_s || 0) * 1000) return 'not_started';
  return r.state === 'in_progress' && r.lateness_s > 0 ? 'late' : r.state;
}

function CloseAlert({ round, store, onClose }) {
  return html`<${Dialog} title=${`${t('close_alert')}: ${nm(round.guard_name) || round.guard}`} testid="alert-dialog" onClose=${onClose}
    onSubmit=${async (form) => {
      const r = await api(`/rounds/${round.id}/alert/close`, { json: { comment: String(form.get('comment')) } });
      store.rounds.set(r.id, { ...store.rounds.get(r.id), ...r });
      store.changed();
    }}>
    <label for="alert-comment">${t('alert_comment_label')}</label>
    <textarea id="alert-comment" name="comment" rows="3" required></textarea>
  <//>`;
}

function Row({ r, store, role, open }) {
  const v = verdict(r);
  const seen = store.lastSeen.get(r.guard);
  const next = r.next_checkpoint ? store.checkpoints.get(r.next_checkpoint) : null;
  return html`<tr data-testid="round-row" data-round-id=${r.id} data-verdict=${v}>
    <td>${nm(r.guard_name) || r.guard}<div class="muted small">${r.guard}</div></td>
    <td>${r.route}<div class="muted small">${r.area}</div></td>
    <td>${clock(r.starts_at)}–${clock(r.ends_at)}</td>
    <td><span class=${`verdict v-${v}`}>${t(v)}</span></td>
    <td><meter min="0" max="100" value=${r.completion_pct} aria-label=${t('completion')}></meter> ${Math.round(r.completion_pct)}%</td>
    <td>${next ? nm(next.name) : r.next_checkpoint || '—'}</td>
    <td>${seen ? html`${nm(seen.name) || seen.checkpoint}<div class="muted small">${since(seen.at)}</div>` : '—'}</td>
    <td>${r.alert_open ? html`<span class="overdue">${t('alert')}</span>
      ${CAN_CLOSE.includes(role) && html`<button type="button" data-testid="close-alert" onClick=${() => open(r)}>${t('close_alert')}</button>`}`
      : r.alert_comment ? html`<span class="muted small">${r.alert_comment}</span>` : ''}</td>
  </tr>`;
}

const HOUR = 3600 * 1000;

/** What the board shows by default: rounds under way or with an open alert, those ended in the last
 * two hours and those starting within the next hour (a day's plan has hundreds). */
function current(r, now) {
  if (r.alert_open || r.state === 'in_progress') return true;
  if (r.state === 'scheduled') return Date.parse(r.starts_at) - now < HOUR;
  return now - Date.parse(r.ends_at) < 2 * HOUR;
}

export function Patrol({ store, role }) {
  const [closing, open] = useState(null);
  const [everything, setEverything] = useState(false);
  const now = Date.now();
  const rank = (r) => (r.state === 'in_progress' ? 0 : r.state === 'scheduled' ? 2 : 1);
  // alerts first, then the rounds under way, the ones just ended, and the next to start
  const rounds = [...store.rounds.values()].filter((r) => everything || current(r, now)).sort((a, b) => (b.alert_open - a.alert_open) || (rank(a) - rank(b))
    || (Math.abs(Date.parse(a.starts_at) - now) - Math.abs(Date.parse(b.starts_at) - now)));
  const counts = { on_time: 0, late: 0, missed: 0, not_started: 0, in_progress: 0, scheduled: 0 };
  store.rounds.forEach((r) => { const v = verdict(r); counts[v] = (counts[v] || 0) + 1; });
  return html`<section aria-labelledby="patrol-title">
    <h2 id="patrol-title">${t('nav_patrol')}</h2>
    <ul class="counts">${Object.entries(counts).map(([k, n]) => html`<li class=${`v-${k}`} data-testid=${`rounds-${k}`}><b>${n}</b> ${t(k)}</li>`)}</ul>
    <label class="check"><input type="checkbox" checked=${everything} onChange=${(e) => setEverything(e.target.checked)} /> ${t('all_rounds_today')}</label>
    ${rounds.length === 0 ? html`<p class="muted">${t('no_items')}</p>` : html`<table class="grid">
      <thead><tr><th scope="col">${t('guard')}</th><th scope="col">${t('route')}</th><th scope="col">${t('window')}</th>
        <th scope="col">${t('state')}</th><th scope="col">${t('completion')}</th><th scope="col">${t('next_checkpoint')}</th>
        <th scope="col">${t('last_seen')}</th><th scope="col">${t('alert')}</th></tr></thead>
      <tbody>${rounds.slice(0, 300).map((r) => html`<${Row} key=${r.id} r=${r} store=${store} role=${role} open=${open} />`)}</tbody>
    </table>`}
    ${closing && html`<${CloseAlert} round=${closing} store=${store} onClose=${() => open(null)} />`}
  </section>`;
}
