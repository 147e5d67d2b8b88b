// Site overview: a tile per building (and per patrol area that is not a building) with its active
// alarms, overdue tickets and rounds rolled up; a tile opens the building's floors and locations.

import { html, useEffect, useRef } from '../../vendor/htm-preact.module.js';
import { alarmType, lang, nm, t } from '../i18n.js';
import { overdue } from '../store.js';
import { verdict } from './patrol.js';

/** B1, 1F… for an alarm known only from its event (the API's list gives the site file's own label). */
function floorLabel(floor) { return floor == null ? '—' : floor < 0 ? `B${-floor}` : `${floor}F`; }

function roundBad(r) { return ['missed', 'late', 'not_started'].includes(verdict(r)) || r.alert_open; }

function rollUp(store) {
  const tiles = new Map(store.buildings.map((b) => [b.code, { code: b.code, name: b.name, alarms: 0, critical: 0, unacked: 0, tickets: 0, overdue: 0, rounds: 0, roundsBad: 0 }]));
  const tile = (key) => {
    if (!tiles.has(key)) tiles.set(key, { code: key, name: null, alarms: 0, critical: 0, unacked: 0, tickets: 0, overdue: 0, rounds: 0, roundsBad: 0 });
    return tiles.get(key);
  };
  for (const a of store.alarms.values()) {
    if (!a.building) continue;
    const x = tile(a.building);
    if (a.active) { x.alarms += 1; if (a.severity === 'critical') x.critical += 1; }
    if (!a.acknowledged) x.unacked += 1;
  }
  for (const tk of store.tickets.values()) {
    if (!tk.building) continue;
    const x = tile(tk.building);
    x.tickets += 1;
    if (overdue(tk)) x.overdue += 1;
  }
  for (const r of store.rounds.values()) {
    const x = tile(r.area);
    x.rounds += 1;
    if (roundBad(r)) x.roundsBad += 1;
  }
  return [...tiles.values()];
}

function Tile({ x, onOpen }) {
  const level = x.critical ? 'critical' : x.alarms || x.overdue ? 'warning' : x.roundsBad ? 'attention' : 'ok';
  return html`<li><button type="button" class=${`tile tile-${level}`} data-testid="building-tile" data-building=${x.code}
    onClick=${() => onOpen(x.code)}>
    <span class="tile-name">${nm(x.name) || x.code}</span>
    <span class="tile-stat"><b>${x.alarms}</b> ${t('active_alarms')}${x.critical ? html` · <b class="crit">${x.critical}</b> ${t('critical')}` : ''}</span>
    <span class="tile-stat"><b>${x.overdue}</b>/${x.tickets} ${t('overdue_tickets')}</span>
    <span class="tile-stat"><b>${x.roundsBad}</b>/${x.rounds} ${t('rounds_today')} ${t('late')}/${t('missed')}</span>
  </button></li>`;
}

function Floors({ store, building, onBack }) {
  const b = store.buildings.find((x) => x.code === building);
  const alarms = [...store.alarms.values()].filter((a) => a.building === building);
  const floors = new Map();
  for (const a of alarms) {
    const key = a.floor ?? '—';
    if (!floors.has(key)) floors.set(key, { label: a.floor_label || floorLabel(a.floor), alarms: [] });
    floors.get(key).alarms.push(a);
  }
  const rows = [...floors.entries()].sort((p, q) => (Number(q[0]) || 0) - (Number(p[0]) || 0));
  return html`<section aria-labelledby="floors-title">
    <button type="button" class="ghost" onClick=${onBack}>← ${t('back')}</button>
    <h2 id="floors-title">${nm(b?.name) || building} · ${t('floors')}</h2>
    ${rows.length === 0 && html`<p class="muted">${t('no_items')}</p>`}
    <ul class="floors">${rows.map(([key, f]) => html`<li data-testid="floor" data-floor=${key}>
      <h3>${f.label}</h3>
      <ul>${f.alarms.map((a) => html`<li><span class=${`dot sev-${a.severity}`} aria-hidden="true"></span>
        ${nm(a.location_name) || a.location} — ${alarmType(a.alarm_type)} (${nm(a.device_name)})</li>`)}</ul>
    </li>`)}</ul>
  </section>`;
}

/** An ECharts chart; re-drawn when its option changes or the language does. */
export function Chart({ option, label, testid }) {
  const el = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    if (!window.echarts || !el.current) return undefined;
    chart.current = window.echarts.init(el.current, null, { renderer: 'canvas' });
    const resize = () => chart.current?.resize();
    window.addEventListener('resize', resize);
    return () => { window.removeEventListener('resize', resize); chart.current?.dispose(); };
  }, []);
  useEffect(() => { chart.current?.setOption(option, true); }, [JSON.stringify(option)]);
  return html`<div class="chart" ref=${el} role="img" aria-label=${label} data-testid=${testid}></div>`;
}

function charts(store) {
  const byType = new Map();
  for (const a of store.alarms.values()) if (a.active) byType.set(a.alarm_type, (byType.get(a.alarm_type) || 0) + 1);
  const results = { on_time: 0, late: 0, missed: 0, not_started: 0, in_progress: 0, scheduled: 0 };
  for (const r of store.rounds.values()) results[verdict(r)] += 1;
  const font = { fontFamily: 'Noto Sans CJK SC, sans-serif' };
  const alarmsOption = {
    textStyle: font, tooltip: {}, grid: { left: 110, right: 20, top: 10, bottom: 30 },
    xAxis: { type: 'value', minInterval: 1 }, yAxis: { type: 'category', data: [...byType.keys()].map(alarmType) },
    series: [{ type: 'bar', data: [...byType.values()], itemStyle: { color: '#c62828' } }],
  };
  const keys = Object.keys(results);
  const roundsOption = {
    textStyle: font, tooltip: {}, grid: { left: 60, right: 20, top: 10, bottom: 30 },
    xAxis: { type: 'category', data: keys.map(t) }, yAxis: { type: 'value', minInterval: 1 },
    series: [{ type: 'bar', data: keys.map((k, i) => ({ value: results[k], itemStyle: { color: ['#2e7d32', '#ef6c00', '#c62828', '#a14a00', '#1565c0', '#757575'][i] } })) }],
  };
  return { alarmsOption, roundsOption, lang: lang() };
}

export function Overview({ store, route, go }) {
  const building = route[1];
  if (building) return html`<${Floors} store=${store} building=${building} onBack=${() => go('#/overview')} />`;
  const tiles = rollUp(store);
  const { alarmsOption, roundsOption } = charts(store);
  return html`<section aria-labelledby="overview-title">
    <h2 id="overview-title">${t('nav_overview')}</h2>
    <ul class="tiles">${tiles.map((x) => html`<${Tile} key=${x.code} x=${x} onOpen=${(c) => go(`#/overview/${c}`)} />`)}</ul>
    <div class="charts">
      <figure><figcaption>${t('alarms_by_type')}</figcaption><${Chart} option=${alarmsOption} label=${t('alarms_by_type')} testid="chart-alarms" /></figure>
      <figure><figcaption>${t('round_results')}</figcaption><${Chart} option=${roundsOption} label=${t('round_results')} testid="chart-rounds" /></figure>
    </div>
  </section>`;
}
