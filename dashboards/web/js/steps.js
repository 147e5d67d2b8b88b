// A ticket's procedure steps with who checked them; checking a safety-critical step asks for an
// explicit confirmation (P5 §2.4.2, P5 §2.4.5(2)), which the API also insists on.

import { html, useState } from '../vendor/htm-preact.module.js';
import { api } from './api.js';
import { clock, Countdown, Dialog } from './common.js';
import { code, nm, t } from './i18n.js';

function StepRow({ ticket, s, canWork, ask }) {
  const done = s.state !== 'pending';
  return html`<li class=${`step step-${s.state}${s.safety_critical ? ' step-safety' : ''}`} data-testid="step"
      data-code=${s.code} data-state=${s.state}>
    <span class="step-no" aria-hidden="true">${s.position}</span>
    <div class="step-body">
      <p>${nm(s.text)}</p>
      ${s.safety_critical && html`<p class="safety">⚠ ${t('safety_critical')}</p>`}
      <p class="muted small">${code(s.department)}
        ${s.due_at && !done ? html` · <${Countdown} at=${s.due_at} />` : ''}
        ${done ? html` · <span data-testid="step-by">${s.state === 'done' ? '✓' : t('not_applicable')} ${s.by} ${clock(s.at)}</span>` : ''}
        ${s.note ? html` · ${s.note}` : ''}</p>
    </div>
    ${!done && canWork && ticket.state !== 'closed' && html`<div class="step-actions">
      <button type="button" class="big" data-testid="step-check" data-code=${s.code} onClick=${() => ask({ kind: 'check', step: s })}>${t('check_step')}</button>
      <button type="button" class="ghost" data-testid="step-na" onClick=${() => ask({ kind: 'na', step: s })}>${t('not_applicable')}</button>
    </div>`}
  </li>`;
}

function StepDialog({ ticket, ask, onDone, onClose }) {
  const s = ask.step;
  const path = `/tickets/${ticket.id}/steps/${encodeURIComponent(s.code)}`;
  if (ask.kind === 'na') {
    return html`<${Dialog} title=${`${t('not_applicable')}: ${nm(s.text)}`} testid="step-dialog" onClose=${onClose}
      onSubmit=${async (form) => onDone(await api(`${path}/not-applicable`, { json: { reason: String(form.get('reason')) } }))}>
      <label for="na-reason">${t('reason')}</label>
      <textarea id="na-reason" name="reason" rows="2" required></textarea>
    <//>`;
  }
  return html`<${Dialog} title=${nm(s.text)} testid="step-dialog" submitLabel=${t('confirm')} onClose=${onClose}
    onSubmit=${async (form) => onDone(await api(`${path}/check`, { json: { confirm_safety: form.get('confirm_safety') === 'on', note: String(form.get('note') || '') || null } }))}>
    ${s.safety_critical && html`<p class="safety">⚠ ${t('safety_critical')}</p>
      <label class="check"><input type="checkbox" id="confirm-safety" name="confirm_safety" required /> ${t('confirm_safety')}</label>`}
    <label for="step-note">${t('note')}</label>
    <textarea id="step-note" name="note" rows="2" maxlength="500"></textarea>
  <//>`;
}

/** The steps, with the actions this user may take; `onDone` gets the ticket as the API returns it. */
export function Steps({ ticket, canWork, onDone }) {
  const [ask, setAsk] = useState(null);
  return html`<div>
    <ol class="steps">${(ticket.steps || []).map((s) => html`<${StepRow} key=${s.code} ticket=${ticket} s=${s} canWork=${canWork} ask=${setAsk} />`)}</ol>
    ${ask && html`<${StepDialog} ticket=${ticket} ask=${ask} onDone=${onDone} onClose=${() => setAsk(null)} />`}
  </div>`;
}
