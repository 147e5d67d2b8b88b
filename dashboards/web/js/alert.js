// The sound of a new critical alarm. Browsers let a page play sound only after the user has
// interacted with it (autoplay rules), so the AudioContext is created on the first click or key
// press (logging in is one) and the header offers a button while it is still suspended.

let ctx = null;

function context() {
  if (!ctx) {
    const Audio = window.AudioContext || window.webkitAudioContext;
    if (!Audio) return null;
    ctx = new Audio();
  }
  return ctx;
}

/** Call from a user gesture: creates or resumes the audio context. */
export function unlockSound() {
  const c = context();
  if (c && c.state === 'suspended') c.resume().catch(() => {});
  return soundOn();
}

export function soundOn() { return ctx !== null && ctx.state === 'running'; }

/** Three short two-tone beeps (synthesised: no audio file to fetch). */
export function beep() {
  const c = context();
  if (!c || c.state !== 'running') return false;
  const start = c.currentTime;
  for (let i = 0; i < 3; i += 1) {
    const osc = c.createOscillator();
    const gain = c.createGain();
    osc.type = 'square';
    osc.frequency.setValueAtTime(i % 2 ? 660 : 880, start + i * 0.35);
    gain.gain.setValueAtTime(0.15, start + i * 0.35);
    gain.gain.setValueAtTime(0, start + i * 0.35 + 0.25);
    osc.connect(gain).connect(c.destination);
    osc.start(start + i * 0.35);
    osc.stop(start + i * 0.35 + 0.3);
  }
  return true;
}

export function installUnlock(onChange) {
  const handler = () => { unlockSound(); setTimeout(() => onChange(soundOn()), 50); };
  window.addEventListener('pointerdown', handler, { capture: true });
  window.addEventListener('keydown', handler, { capture: true });
}
