// Live alarms: severity, age, the ticket's acknowledge-by countdown; acknowledge with a comment in one
// action; snooze a device with a reason (supervisors and managers, as the API allows).

import { html, useState } from '../../vendor/htm-preact.module.js';
import { api } from '../api.js';
import { Countdown, Dialog, Severity, since } from '../common.js';
import { alarmType, nm, t } from '../i18n.js';

const SEVERITY_ORDER = { critical: 0, major: 1, warning: 2, minor: 3, info: 4 };
const CAN_ACK = ['control_room', 'supervisor', 'admin'];
const CAN_SNOOZE = ['supervisor', 'manager', 'admin'];

function sorted(alarms) {
  return [...alarms].sort((a, b) => (a.acknowledged - b.acknowledged) || (SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity])
    || (Date.parse(b.opened_at) - Date.parse(a.opened_at)));
}

function AckDialog({ alarm, store, onClose }) {
  return html`<${Dialog} title=${`${t('acknowledge')}: ${alarmType(alarm.alarm_type)} · ${nm(alarm.device_name)}`} testid="ack-dialog"
    submitLabel=${t('acknowledge')} onClose=${onClose}
    onSubmit=${async (form) => {
      const updated = await api(`/alarms/${alarm.id}/acknowledge`, { json: { comment: String(form.get('comment') || '') || null } });
      store.putAlarm(updated);
      if (updated.ticket_id) store.refreshTicket(updated.ticket_id);
      store.changed();
    }}>
    <label for="ack-comment">${t('ack_comment_label')}</label>
    <textarea id="ack-comment" name="comment" rows="3" maxlength="500"></textarea>
  <//>`;
}

function SnoozeDialog({ alarm, store, onClose }) {
  return html`<${Dialog} title=${`${t('snooze')}: ${nm(alarm.device_name)}`} testid="snooze-dialog" onClose=${onClose}
    onSubmit=${async (form) => {
      await api('/alarms/snoozes', { json: { site: store.site, device: alarm.device, minutes: Number(form.get('minutes')), reason: String(form.get('reason')) } });
    }}>
    <label for="snooze-minutes">${t('snooze_minutes_label')}</label>
    <input id="snooze-minutes" name="minutes" type="number" min="1" max="10080" value="60" required />
    <label for="snooze-reason">${t('snooze_reason_label')}</label>
    <textarea id="snooze-reason" name="reason" rows="2" required minlength="2" maxlength="500"></textarea>
  <//>`;
}

function Row({ a, store, role, open }) {
  const ticket = a.ticket_id ? store.tickets.get(a.ticket_id) : null;
  return html`<tr data-testid="alarm-row" data-alarm-id=${a.id} data-severity=${a.severity}
      data-acknowledged=${String(a.acknowledged)} class=${a.active ? `row-${a.severity}` : 'row-cleared'}>
    <td><${Severity} value=${a.severity} /></td>
    <td>${alarmType(a.alarm_type)}${a.flapping ? ' ⇅' : ''}</td>
    <td>${nm(a.device_name)}<div class="muted small">${nm(a.location_name)}</div></td>
    <td>${since(a.opened_at)}<div class="muted small">×${a.count}</div></td>
    <td>${a.acknowledged ? html`<span class="ok">${t('acknowledged')}</span>`
      : ticket?.acknowledged_at ? html`<span class="muted">${t('ticket')} ${t('acknowledged')}</span>`
      : html`<${Countdown} at=${ticket?.deadlines?.ack_by} testid="ack-countdown" />`}</td>
    <td>${a.active ? t('active') : t('cleared')}${a.snoozed_until ? html`<div class="muted small">${t('snooze')}</div>` : ''}
      ${a.ticket_id ? html`<div><a href=${`#/tickets/${a.ticket_id}`}>${t('ticket')} #${a.ticket_id}</a></div>` : ''}</td>
    <td class="actions">
      ${!a.acknowledged && CAN_ACK.includes(role) && html`<button type="button" data-testid="ack" onClick=${() => open({ kind: 'ack', alarm: a })}>${t('acknowledge')}</button>`}
      ${a.active && CAN_SNOOZE.includes(role) && html`<button type="button" class="ghost" data-testid="snooze" onClick=${() => open({ kind: 'snooze', alarm: a })}>${t('snooze')}</button>`}
    </td>
  </tr>`;
}

export function Alarms({ store, role }) {
  const [dialog, open] = useState(null);
  const rows = sorted(store.alarms.values());
  return html`<section aria-labelledby="alarms-title">
    <h2 id="alarms-title">${t('nav_alarms')} <span class="count" data-testid="alarm-count">${rows.length}</span></h2>
    ${rows.length === 0 ? html`<p class="muted">${t('no_items')}</p>` : html`<table class="grid">
      <thead><tr><th scope="col">${t('severity')}</th><th scope="col">${t('type')}</th><th scope="col">${t('device')}</th>
        <th scope="col">${t('age')}</th><th scope="col">${t('ack_by')}</th><th scope="col">${t('state')}</th><th scope="col">${t('actions')}</th></tr></thead>
      <tbody>${rows.map((a) => html`<${Row} key=${a.id} a=${a} store=${store} role=${role} open=${open} />`)}</tbody>
    </table>`}
    ${dialog?.kind === 'ack' && html`<${AckDialog} alarm=${dialog.alarm} store=${store} onClose=${() => open(null)} />`}
    ${dialog?.kind === 'snooze' && html`<${SnoozeDialog} alarm=${dialog.alarm} store=${store} onClose=${() => open(null)} />`}
  </section>`;
}
