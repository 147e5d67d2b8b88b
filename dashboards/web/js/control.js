// The control room's screen: header (live state, sound, language, user), the five views, the
// critical-alarm banner and the login overlay. Data: SiteStore, kept live by LiveFeed.

import { html, render, useEffect, useMemo, useState } from '../vendor/htm-preact.module.js';
import { beep, installUnlock, soundOn, unlockSound } from './alert.js';
import { api, logout, session, watchExpiry } from './api.js';
import { clock, LangSwitch, Login, setZone, useLoginNeeded, useTick } from './common.js';
import { alarmType, code, nm, onLang, t } from './i18n.js';
import { LiveFeed } from './live.js';
import { SiteStore, siteDate } from './store.js';
import { Alarms } from './views/alarms.js';
import { Devices } from './views/devices.js';
import { Overview } from './views/overview.js';
import { Patrol } from './views/patrol.js';
import { Tickets } from './views/tickets.js';

const VIEWS = { overview: Overview, alarms: Alarms, tickets: Tickets, patrol: Patrol, devices: Devices };
const SITE_KEY = 'patrol.site';

function useRoute() {
  const parse = () => (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const f = () => setRoute(parse());
    window.addEventListener('hashchange', f);
    f(); // the hash may have changed between the first render and this listener
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return route;
}

function useLang() {
  const [, set] = useState(0);
  useEffect(() => onLang(() => set((n) => n + 1)), []);
}

function useStore(site, timezone) {
  const store = useMemo(() => (site ? new SiteStore(site, timezone) : null), [site]);
  const [, set] = useState(0);
  const [live, setLive] = useState('connecting');
  useEffect(() => {
    if (!store) return undefined;
    const off = store.subscribe(() => set((n) => n + 1));
    const feed = new LiveFeed({ site, onEvent: (e) => store.apply(e), onHello: () => store.resync(), onState: setLive });
    feed.start();
    store.resync();
    // a new day at the site: today's rounds are another list
    const day = setInterval(() => { if (store.loaded && siteDate(timezone) !== store.day) store.resync(); }, 60000);
    return () => { off(); feed.stop(); clearInterval(day); };
  }, [store]);
  return [store, live];
}

function CriticalBanner({ items, beeped, onDismiss }) {
  if (!items.length) return null;
  return html`<div class="critical-banner" role="alert" data-testid="critical-banner" data-beeped=${String(beeped)}>
    <strong>${t('critical_new')}</strong>
    <ul>${items.map((a) => html`<li key=${a.id}><a href="#/alarms">${alarmType(a.alarm_type)} · ${nm(a.location_name) || a.device} · ${clock(a.opened_at)}</a></li>`)}</ul>
    <button type="button" onClick=${onDismiss}>${t('dismiss')}</button>
  </div>`;
}

function Header({ route, live, sound, setSound, sites, site, setSite }) {
  const s = session();
  return html`<header class="top">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>${t('skip_to_main')}</a>
    <h1>${t('app_title')}</h1>
    ${sites.length > 1 ? html`<label class="site-pick">${t('site')} <select value=${site} onChange=${(e) => setSite(e.target.value)}>
      ${sites.map((x) => html`<option value=${x.code}>${nm(x.name)}</option>`)}</select></label>`
      : html`<span class="site-name">${nm(sites[0]?.name)}</span>`}
    <nav aria-label=${t('app_title')}><ul>${Object.keys(VIEWS).map((v) => html`<li><a href=${`#/${v}`}
      aria-current=${route[0] === v ? 'page' : undefined} data-testid=${`nav-${v}`}>${t(`nav_${v}`)}</a></li>`)}</ul></nav>
    <span class=${`live live-${live}`} data-testid="live-status" data-state=${live} role="status">${t(`live_${live}`)}</span>
    <button type="button" class=${sound ? 'ghost sound-on' : 'ghost'} data-testid="sound" aria-pressed=${sound}
      onClick=${() => setSound(unlockSound())}>${sound ? t('sound_on') : t('sound_enable')}</button>
    <${LangSwitch} />
    <span class="user" data-testid="user">${s?.user?.display_name || s?.username} · ${code(s?.role)}</span>
    <button type="button" class="ghost" onClick=${logout}>${t('logout')}</button>
  </header>`;
}

function Shell() {
  const route = useRoute();
  const [sites, setSites] = useState([]);
  const [site, setSite] = useState(null);
  const [sound, setSound] = useState(soundOn());
  const [critical, setCritical] = useState([]);
  const [beeped, setBeeped] = useState(false);
  useTick(); // ages and countdowns move every second
  useEffect(() => {
    installUnlock(setSound);
    const load = () => api('/sites').then((list) => {
      setSites(list);
      const kept = localStorage.getItem(SITE_KEY);
      setSite(list.find((x) => x.code === kept)?.code || list[0]?.code || null);
    }).catch(() => setTimeout(load, 3000)); // the API restarting: try again
    load();
  }, []);
  const timezone = sites.find((x) => x.code === site)?.timezone;
  const [store, live] = useStore(site, timezone);
  useEffect(() => { document.getElementById('main')?.focus({ preventScroll: true }); }, [route.join('/')]);
  useEffect(() => store?.onCritical((a) => {
    setCritical((xs) => [a, ...xs.filter((x) => x.id !== a.id)].slice(0, 5));
    const played = beep();
    setBeeped(played);
    setSound(played || soundOn());
  }), [store]);
  const View = VIEWS[route[0]] || Overview;
  const role = session()?.role;
  const pick = (code) => { localStorage.setItem(SITE_KEY, code); setSite(code); };
  setZone(timezone);
  return html`<div class=${critical.length ? 'app flash' : 'app'}>
    <${Header} route=${route} live=${live} sound=${sound} setSound=${setSound} sites=${sites} site=${site} setSite=${pick} />
    <${CriticalBanner} items=${critical} beeped=${beeped} onDismiss=${() => setCritical([])} />
    <main id="main" tabindex="-1" data-loaded=${String(Boolean(store?.loaded))}>
      ${store?.error && html`<p class="error" role="alert">${t('error')}: ${store.error.message}</p>`}
      ${store ? html`<${View} store=${store} route=${route} role=${role} go=${(h) => { location.hash = h; }} />` : html`<p class="muted">…</p>`}
    </main>
  </div>`;
}

function App() {
  useLang();
  const loginNeeded = useLoginNeeded();
  const [started, setStarted] = useState(session() !== null && !loginNeeded);
  useEffect(() => { if (!loginNeeded) setStarted(true); }, [loginNeeded]);
  if (started && session()?.role === 'guard') { location.replace('guard.html'); return null; }
  if (!started) return html`<${Login} overlay=${false} />`;
  return html`<${Shell} />${loginNeeded && html`<${Login} overlay=${true} />`}`;
}

watchExpiry();
render(html`<${App} />`, document.getElementById('app'));
