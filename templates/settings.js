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

export async function loadSettings() {
  try {
    const s = await api('GET', '/api/settings');
    if (!s) return;
    settings = s;
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
  const text = [];
  if (s.open === false) {
    text.push(...I.tn('schedule.closed', { start: I.clock(s.start), end: I.clock(s.end) }));
    const next = Date.parse(s.next_start || '');
    if (Number.isFinite(next) && next > 0) {
      text.push(' ', ...I.tn('schedule.next', { when: h('strong', { text: I.when(new Date(next)) }), in: I.duration(Math.max(0, (next - Date.now()) / 1000)) }));
    }
  } else {
    text.push(...I.tn('schedule.open', { start: I.clock(s.start), end: I.clock(s.end) }));
  }
  $('schedule-text').replaceChildren(...text);
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
