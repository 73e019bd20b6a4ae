// The header's settings: downloads at once (concurrency), the speed limit,
// and the queue's daily window (its button, the bar that says what it
// means now, and its dialog).
import { $, h, setText } from './dom.js';
import { latinDigits, parseDigits } from './i18n.js';
import { I } from './state.js';
import { ApiError, api, errorBlock, apiSentence } from './api.js';
import { toast, reportError } from './toast.js';
import { store, refreshNow } from './store.js';
import { scheduleRender } from './lists.js';

export let concurrencyPending = false;
let concTimer = 0;

function setConcurrency(n, now) {
  const input = $('concurrency');
  n = Math.max(1, Math.min(32, Math.round(n) || 1));
  input.value = I.num(n);
  concurrencyPending = true;
  clearTimeout(concTimer);
  concTimer = setTimeout(async () => {
    try {
      const s = await api('POST', '/api/settings', { concurrency: String(n) });
      if (s && typeof s.concurrency === 'number') {
        store.concurrency = s.concurrency;
        input.value = I.num(s.concurrency);
      }
      toast('info', I.t('toast.saved'), I.t('toast.concurrency', { n: store.concurrency ?? n, count: input.value }));
    } catch (e) {
      reportError(e, I.t('toast.notSaved'));
    } finally {
      concurrencyPending = false;
    }
  }, now ? 0 : 500);
}

// Speed limits offered (bytes per second; 0 = none).
export const limitChoices = [0, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 5 << 20, 10 << 20, 20 << 20, 50 << 20];
export let globalLimit = 0;

export function showLimit(rate) {
  globalLimit = rate > 0 ? rate : 0;
  const sel = $('limit-rate');
  const values = limitChoices.includes(globalLimit) ? limitChoices : [...limitChoices, globalLimit].sort((a, b) => a - b);
  sel.replaceChildren(...values.map((v) => h('option', { value: String(v), text: v ? I.t('limit.max', { speed: I.speed(v) }) : I.t('limit.none') })));
  sel.value = String(globalLimit);
}

async function setLimit() {
  const sel = $('limit-rate');
  try {
    const s = await api('POST', '/api/settings', { limit_rate: sel.value });
    const rate = s && typeof s.limit_rate === 'number' ? s.limit_rate : Number(sel.value);
    showLimit(rate);
    toast('info', I.t('toast.saved'), rate > 0 ? I.t('toast.globalLimit', { speed: I.speed(rate) }) : I.t('limit.none'));
  } catch (e) {
    reportError(e, I.t('toast.limitNotSaved'));
    loadSettings();
  }
}

let settings = {};

// The server's clock (GET /api/settings, the envelope's schedule): the
// window is on it, so every time the page says of the window is said on
// it too, with its name, and never on the browser's (issue 25: a UTC
// server's 03:00 was "06:30" to a page in Tehran). skew is how far the
// server's clock is from the browser's; offset its seconds east of UTC
// (null: an older server that does not say, and the browser's clock is used).
const serverClock = { skew: 0, offset: null, zone: '' };

function learnClock(s, timeKey) {
  const at = Date.parse(s[timeKey] || '');
  if (Number.isFinite(at)) serverClock.skew = at - Date.now();
  if (typeof s.utc_offset === 'number') {
    serverClock.offset = s.utc_offset;
    serverClock.zone = s.time_zone || '';
  }
}

// wall is a moment as the server's clock reads it, in a Date's UTC
// fields (i18n's wallClock and wallWhen read them).
const wall = (ms) => new Date(ms + serverClock.offset * 1000);

// zoneName names the server's zone: "UTC", "UTC+03:30", "CET (UTC+01:00)".
function zoneName() {
  const off = serverClock.offset;
  const abs = Math.abs(off);
  const hhmm = `${String(Math.floor(abs / 3600)).padStart(2, '0')}:${String(Math.floor((abs % 3600) / 60)).padStart(2, '0')}`;
  const utc = off === 0 ? 'UTC' : `UTC${off < 0 ? '−' : '+'}${hhmm}`;
  const abbr = /^[A-Za-z]{2,6}$/.test(serverClock.zone) && !/^(UTC|GMT|Z)$/i.test(serverClock.zone) ? serverClock.zone : '';
  return h('bdi', { dir: 'ltr', class: 'zone', text: abbr ? `${abbr} (${utc})` : utc });
}

// clockNow is the server's time now and its zone, for a sentence (or
// null when the server does not say its zone).
function clockNow() {
  if (serverClock.offset === null) return null;
  return { time: I.wallClock(wall(Date.now() + serverClock.skew)), zone: zoneName() };
}

export async function loadSettings() {
  try {
    const s = await api('GET', '/api/settings');
    if (!s) return;
    settings = s;
    learnClock(s, 'server_time');
    if (typeof s.concurrency === 'number') {
      store.concurrency = s.concurrency;
      $('concurrency').value = I.num(s.concurrency);
    }
    // An older server without a speed limit setting: no control.
    $('limit-rate').closest('.limit').hidden = typeof s.limit_rate !== 'number';
    if (typeof s.limit_rate === 'number') showLimit(s.limit_rate);
    if (s.output_dir) $('output-dir').textContent = s.output_dir;
    if (s.version) $('version').textContent = s.version;
    if (!store.schedule && 'schedule_start' in s) {
      store.schedule = { start: s.schedule_start || '', end: s.schedule_end || '', open: !s.schedule_next, next_start: s.schedule_next || '' };
    }
    showSchedule();
  } catch (e) {
    reportError(e, I.t('toast.settingsUnread'));
  }
}

// The daily window: the header's button says it, the bar under the header
// says what it means now ("the queue will next run at …").
export function showSchedule() {
  const s = store.schedule;
  const has = !!(s && (s.start || s.end));
  const btn = $('schedule-open');
  btn.hidden = !s && !('schedule_start' in settings);
  setText($('schedule-label'), has ? I.t('schedule.window', { start: I.clock(s.start), end: I.clock(s.end) }) : I.t('schedule.anyTime'));
  btn.setAttribute('aria-label', has ? I.t('schedule.buttonLabel', { start: I.clock(s.start), end: I.clock(s.end) }) : I.t('schedule.buttonLabelAlways'));
  btn.classList.toggle('closed', has && s.open === false);
  const bar = $('schedule-bar');
  bar.hidden = !has;
  bar.classList.toggle('closed', has && s.open === false);
  if (!has) return;
  if (typeof s.utc_offset === 'number') learnClock(s, '');
  const text = [];
  const now = Date.now() + serverClock.skew;
  if (s.open === false) {
    text.push(...I.tn('schedule.closed', { start: I.clock(s.start), end: I.clock(s.end) }));
    const next = Date.parse(s.next_start || '');
    if (Number.isFinite(next) && next > 0) {
      const when = serverClock.offset === null ? I.when(new Date(next)) : I.wallWhen(wall(next), wall(now));
      text.push(' ', ...I.tn('schedule.next', { when: h('strong', { text: when }), in: I.duration(Math.max(0, (next - now) / 1000)) }));
    }
  } else {
    text.push(...I.tn('schedule.open', { start: I.clock(s.start), end: I.clock(s.end) }));
  }
  $('schedule-text').replaceChildren(...text);
  const c = clockNow();
  $('schedule-clock').hidden = !c;
  if (c) $('schedule-clock').replaceChildren(...I.tn('schedule.clock', c));
}

// showServerTime fills the dialog's line: the server's clock now.
function showServerTime() {
  const c = clockNow();
  const line = $('schedule-server-time');
  line.hidden = !c;
  if (c) line.replaceChildren(...I.tn('schedule.serverTime', c));
}

// parseClock reads "2", "2:30", "02:30", "0230", "۲:۳۰" as "HH:MM".
function parseClock(s) {
  const v = latinDigits(s).trim().replace(/[٫.]/g, ':');
  if (v === '') return '';
  let m = /^(\d{1,2})(?::(\d{1,2}))?$/.exec(v);
  if (!m) m = /^(\d{2})(\d{2})$/.exec(v);
  if (!m) return null;
  const hh = Number(m[1]);
  const mm = Number(m[2] || 0);
  if (hh > 23 || mm > 59) return null;
  return `${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')}`;
}

function openSchedule() {
  const s = store.schedule || {};
  $('schedule-start').value = s.start ? I.clock(s.start) : '';
  $('schedule-end').value = s.end ? I.clock(s.end) : '';
  $('schedule-error').hidden = true;
  showServerTime();
  $('schedule-dialog').showModal();
  $('schedule-start').focus();
}

async function saveSchedule(start, end) {
  const errBox = $('schedule-error');
  errBox.hidden = true;
  const fail = (content, field) => {
    errBox.replaceChildren(content);
    errBox.hidden = false;
    if (field) $(field).focus();
  };
  if (start === null) return fail(I.t('schedule.errFormat'), 'schedule-start');
  if (end === null) return fail(I.t('schedule.errFormat'), 'schedule-end');
  if ((start === '') !== (end === '')) return fail(I.t('schedule.errBoth'), start === '' ? 'schedule-start' : 'schedule-end');
  try {
    const r = await api('POST', '/api/settings', { schedule_start: start, schedule_end: end });
    if (r) {
      settings = r;
      store.schedule = { ...(store.schedule || {}), start: r.schedule_start ?? start, end: r.schedule_end ?? end, open: !r.schedule_next, next_start: r.schedule_next || '' };
    }
    $('schedule-dialog').close();
    showSchedule();
    toast('info', I.t('toast.saved'), start ? I.t('schedule.window', { start: I.clock(start), end: I.clock(end) }) : I.t('schedule.anyTime'));
    await refreshNow();
    scheduleRender();
  } catch (e) {
    fail(errorBlock(e instanceof ApiError && e.status === 400 ? I.t('schedule.errServer') : apiSentence(e), e.message));
  }
}

export function wireSettings() {
  const conc = $('concurrency');
  $('conc-dec').addEventListener('click', () => setConcurrency((parseDigits(conc.value) || 2) - 1));
  $('conc-inc').addEventListener('click', () => setConcurrency((parseDigits(conc.value) || 0) + 1));
  conc.addEventListener('change', () => setConcurrency(parseDigits(conc.value), true));
  conc.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      e.preventDefault();
      setConcurrency((parseDigits(conc.value) || 1) + (e.key === 'ArrowUp' ? 1 : -1));
    }
    if (e.key === 'Enter') conc.blur();
  });

  $('limit-rate').addEventListener('change', setLimit);

  $('schedule-open').addEventListener('click', openSchedule);
  $('schedule-change').addEventListener('click', openSchedule);
  $('schedule-cancel').addEventListener('click', () => $('schedule-dialog').close());
  $('schedule-always').addEventListener('click', () => saveSchedule('', ''));
  $('schedule-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveSchedule(parseClock($('schedule-start').value), parseClock($('schedule-end').value));
  });
}
