// Device health: offline, low battery, last seen; problems first.

import { html, useState } from '../../vendor/htm-preact.module.js';
import { since } from '../common.js';
import { code, nm, t } from '../i18n.js';

const LOW_BATTERY = 20;

function problem(d) { return d.online === false || (d.battery_pct ?? 100) < LOW_BATTERY; }

export function Devices({ store }) {
  const [onlyProblems, setOnly] = useState(true);
  const all = [...store.devices.values()].filter((d) => d.active !== false);
  const rows = all.filter((d) => !onlyProblems || problem(d))
    .sort((a, b) => (problem(b) - problem(a)) || ((a.battery_pct ?? 100) - (b.battery_pct ?? 100)));
  const offline = all.filter((d) => d.online === false).length;
  const low = all.filter((d) => (d.battery_pct ?? 100) < LOW_BATTERY).length;
  return html`<section aria-labelledby="devices-title">
    <h2 id="devices-title">${t('nav_devices')}</h2>
    <ul class="counts">
      <li data-testid="devices-offline"><b>${offline}</b> ${t('offline')}</li>
      <li data-testid="devices-low"><b>${low}</b> ${t('low_battery')}</li>
      <li><b>${all.length}</b> ${t('all_devices')}</li>
    </ul>
    <label class="check"><input type="checkbox" checked=${onlyProblems} onChange=${(e) => setOnly(e.target.checked)} /> ${t('problems_only')}</label>
    ${rows.length === 0 ? html`<p class="muted">${t('no_items')}</p>` : html`<table class="grid">
      <thead><tr><th scope="col">${t('device')}</th><th scope="col">${t('kind')}</th><th scope="col">${t('state')}</th>
        <th scope="col">${t('battery')}</th><th scope="col">${t('last_report')}</th></tr></thead>
      <tbody>${rows.map((d) => html`<tr key=${d.code} data-testid="device-row" data-device=${d.code} data-online=${String(d.online)}>
        <td>${nm(d.name)}<div class="muted small">${d.code}</div></td>
        <td>${code(d.kind)}</td>
        <td>${d.online === false ? html`<span class="overdue">${t('offline')}</span>` : d.online ? html`<span class="ok">${t('online')}</span>` : '—'}</td>
        <td class=${(d.battery_pct ?? 100) < LOW_BATTERY ? 'overdue' : ''}>${d.battery_pct ?? '—'}${d.battery_pct != null ? '%' : ''}</td>
        <td>${d.status_at ? since(d.status_at) : '—'}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}
