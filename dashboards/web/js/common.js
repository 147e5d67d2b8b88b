// What both screens share: the login overlay, dialogs, times and countdowns, badges.

import { html, useEffect, useRef, useState } from '../vendor/htm-preact.module.js';
import { ApiError, login, loginNeeded, onSession } from './api.js';
import { lang, setLang, t } from './i18n.js';

export { html };

/** Re-renders every second: ages and countdowns tick without a request. */
export function useTick(ms = 1000) {
  const [, set] = useState(0);
  useEffect(() => { const id = setInterval(() => set((n) => n + 1), ms); return () => clearInterval(id); }, [ms]);
}

/** "3 min 20 s" style durations, in the chosen language. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const zh = lang() !== 'en';
  if (h) return zh ? `${h}小时${m}分` : `${h} h ${m} min`;
  if (m) return zh ? `${m}分${sec}秒` : `${m} min ${sec} s`;
  return zh ? `${sec}秒` : `${sec} s`;
}

export function since(iso) { return iso ? duration((Date.now() - Date.parse(iso)) / 1000) : ''; }

let zone; // the site's time zone: a control room abroad or a browser set to UTC still shows site time

/** Times are shown in the site's own time zone (SitePublic.timezone). */
export function setZone(tz) { zone = tz || undefined; }

export function clock(iso, seconds = true) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString(lang() === 'en' ? 'en-GB' : 'zh-CN', {
    hour: '2-digit', minute: '2-digit', ...(seconds && { second: '2-digit' }), timeZone: zone, hour12: false,
  });
}

export function dateTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(lang() === 'en' ? 'en-GB' : 'zh-CN', { hour12: false, timeZone: zone });
}

/** A deadline: time left, or how long overdue (red). */
export function Countdown({ at, testid }) {
  if (!at) return html`<span class="muted">—</span>`;
  const left = (Date.parse(at) - Date.now()) / 1000;
  if (left < 0) return html`<span class="overdue" data-testid=${testid}>${t('overdue')} ${duration(-left)}</span>`;
  return html`<span class=${left < 60 ? 'soon' : ''} data-testid=${testid}>${t('due_in')} ${duration(left)}</span>`;
}

export function Severity({ value }) {
  return html`<span class=${`sev sev-${value}`}>${t(`sev_${value}`)}</span>`;
}

export function LangSwitch() {
  return html`<button type="button" class="ghost" data-testid="lang" lang=${lang() === 'en' ? 'zh-CN' : 'en'}
    onClick=${() => setLang(lang() === 'en' ? 'zh-CN' : 'en')}>${t('lang_switch')}</button>`;
}

/** The login form; as an overlay when a session ends, over a page that keeps its state. */
export function Login({ overlay }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const user = useRef(null);
  useEffect(() => { user.current?.focus(); }, []);
  async function submit(e) {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError('');
    try {
      await login(String(form.get('username')), String(form.get('password')));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 429 ? t('login_locked') : err instanceof ApiError && err.status === 401 ? t('login_failed') : `${t('error')}: ${err.message}`);
    } finally {
      setBusy(false);
    }
  }
  return html`<div class=${overlay ? 'overlay' : 'login-page'}>
    <form class="card login" id="login-form" onSubmit=${submit} role=${overlay ? 'dialog' : undefined}
      aria-modal=${overlay ? 'true' : undefined} aria-labelledby="login-heading">
      <h1 id="login-heading">${t('login_title')}</h1>
      ${overlay && html`<p class="notice" data-testid="login-again">${t('login_again')}</p>`}
      <label for="username">${t('username')}</label>
      <input id="username" name="username" autocomplete="username" required ref=${user} />
      <label for="password">${t('password')}</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button id="login-submit" type="submit" disabled=${busy}>${t('login')}</button>
      <${LangSwitch} />
    </form>
  </div>`;
}

/** True while the login overlay must show (no session, expired, or a 401 seen). */
export function useLoginNeeded() {
  const [needed, setNeeded] = useState(loginNeeded());
  useEffect(() => onSession((what) => setNeeded(what === 'login-needed')), []);
  return needed;
}

/** A modal dialog with a form; `onSubmit` gets the FormData and may throw an ApiError to show. */
export function Dialog({ title, children, submitLabel, onSubmit, onClose, testid }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const ref = useRef(null);
  useEffect(() => {
    const opener = document.activeElement; // focus goes back there when the dialog closes (or to main)
    ref.current?.querySelector('textarea, input, select')?.focus();
    return () => (opener?.isConnected ? opener : document.getElementById('main'))?.focus?.();
  }, []);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await onSubmit(new FormData(e.target));
      onClose();
    } catch (err) {
      setError(err.status === 403 ? t('forbidden') : `${t('error')}: ${err.message}`);
    } finally {
      setBusy(false);
    }
  }
  return html`<div class="overlay" onKeyDown=${(e) => e.key === 'Escape' && onClose()}>
    <form class="card dialog" ref=${ref} role="dialog" aria-modal="true" aria-labelledby="dialog-title"
      onSubmit=${submit} data-testid=${testid}>
      <h2 id="dialog-title">${title}</h2>
      ${children}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="row">
        <button type="submit" data-testid="dialog-submit" disabled=${busy}>${submitLabel || t('submit')}</button>
        <button type="button" class="ghost" onClick=${onClose}>${t('cancel')}</button>
      </div>
    </form>
  </div>`;
}
