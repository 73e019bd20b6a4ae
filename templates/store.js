// The download list: the newest copy of every download, kept up to date
// over the event stream (GET /api/events: the changes since the last
// revision, docs/API.md), or by polling ?since= once a second when the
// server refuses the stream, and only while the page is visible. Also the
// tabs' lists of ids, in queue order, that lists.js renders, and the
// header's counts, kept change by change.
import { h, nameFromSource } from './dom.js';
import { I } from './state.js';
import { ApiError, api, online, setOnline, errorBlock, failureSentence } from './api.js';
import { toast } from './toast.js';
import { vlists, scheduleRender } from './lists.js';
import { refreshTab } from './tabs.js';
import { showSchedule } from './settings.js';

// ---------- states ----------

export const finished = (s) => s === 'completed' || s === 'canceled';
export const ended = (s) => finished(s) || s === 'failed';
export const running = (s) => s === 'downloading' || s === 'verifying' || s === 'packaging';

// Which lists a download is in: Active has everything not finished (running,
// queued, paused, failed); Queue the queued ones, in order; Finished the
// completed and canceled ones.
export function tabsOf(state) {
  if (state === 'queued') return 'active queue';
  if (finished(state)) return 'finished';
  return 'active';
}

// ---------- the download list: state and sync ----------

export const store = {
  jobs: new Map(), // id → download object
  order: [], // ids in queue order
  rev: null, // revision of the newest envelope applied
  loaded: false,
  concurrency: null,
  totalSpeed: null,
  summary: null,
  schedule: null, // {start, end, open, next_start}
  scheduleKey: '',
};

export const jobName = (j) => j.name || nameFromSource(j.source);

export const lists = { active: [], queue: [], finished: [] };
export const orderIndex = new Map(); // id → place in store.order (lists are sorted by it)
export const dirty = { lists: true }; // lists: rebuild every list (the order changed, or jobs came or went)
export const moves = []; // downloads that changed lists since the last render: [id, tabs before]
export const localAdds = new Set(); // ids this page added (it says so itself)

// The header's counts, kept up to date change by change: counting 10,000
// downloads on every update would cost more than drawing the rows in view.
export const counts = { running: 0, queued: 0, paused: 0, failed: 0, finished: 0 };

function bucketOf(state) {
  if (state === 'queued' || state === 'paused' || state === 'failed') return state;
  return finished(state) ? 'finished' : 'running';
}

// sums is the overall progress of what is still to do (queued, running,
// paused): bytes done, bytes in all (a download of unknown size counts what
// it has so far), and how many sizes are unknown yet. Kept the same way.
export const sums = { done: 0, total: 0, unknown: 0 };

function addSums(j, sign) {
  if (ended(j.state)) return;
  const done = j.bytes_done > 0 ? j.bytes_done : 0;
  sums.done += sign * done;
  if (j.bytes_total > 0) {
    sums.total += sign * j.bytes_total;
  } else {
    sums.total += sign * done;
    sums.unknown += sign;
  }
}

function recount() {
  for (const k of Object.keys(counts)) counts[k] = 0;
  sums.done = 0;
  sums.total = 0;
  sums.unknown = 0;
  for (const j of store.jobs.values()) {
    counts[bucketOf(j.state)]++;
    addSums(j, 1);
  }
}

// upsert keeps the newer of two copies of a download (an action's answer
// may overtake an event in flight).
export function upsert(j) {
  const old = store.jobs.get(j.id);
  if (old && typeof old.rev === 'number' && typeof j.rev === 'number' && j.rev < old.rev) return false;
  store.jobs.set(j.id, j);
  if (old) {
    counts[bucketOf(old.state)]--;
    addSums(old, -1);
  }
  counts[bucketOf(j.state)]++;
  addSums(j, 1);
  if (!old) dirty.lists = true;
  else if (tabsOf(old.state) !== tabsOf(j.state)) moves.push([j.id, tabsOf(old.state)]);
  return true;
}

function forget(id) {
  const old = store.jobs.get(id);
  if (!old) return false;
  store.jobs.delete(id);
  counts[bucketOf(old.state)]--;
  addSums(old, -1);
  return true;
}

function applyEnvelope(d) {
  if (!d) return;
  const full = d.full !== false;
  const incoming = Array.isArray(d.downloads) ? d.downloads : [];
  const before = store.loaded ? new Map() : null;
  if (before) for (const j of incoming) { const o = store.jobs.get(j.id); before.set(j.id, o ? o.state : undefined); }

  if (full) {
    const next = new Map();
    for (const j of incoming) next.set(j.id, j);
    store.jobs = next;
    recount();
    store.order = Array.isArray(d.order) ? d.order
      : (d.rev === undefined ? incoming.slice().sort((a, b) => (a.position ?? 0) - (b.position ?? 0)) : incoming).map((j) => j.id);
    dirty.lists = true;
  } else {
    let membership = false;
    for (const j of incoming) {
      if (!store.jobs.has(j.id)) membership = true;
      upsert(j);
    }
    for (const id of d.removed || []) {
      if (forget(id)) membership = true;
    }
    if (Array.isArray(d.order)) {
      store.order = d.order;
      dirty.lists = true;
    } else if (membership) {
      const seen = new Set();
      store.order = store.order.filter((id) => store.jobs.has(id) && !seen.has(id) && seen.add(id));
      for (const j of incoming) if (!seen.has(j.id)) { store.order.push(j.id); seen.add(j.id); }
      dirty.lists = true;
    }
  }
  if (typeof d.rev === 'number') store.rev = store.rev === null || full ? d.rev : Math.max(store.rev, d.rev);
  if (typeof d.concurrency === 'number') store.concurrency = d.concurrency;
  if (typeof d.total_speed === 'number') store.totalSpeed = d.total_speed;
  if (d.summary && typeof d.summary === 'object') store.summary = d.summary;
  if (d.schedule && typeof d.schedule === 'object') {
    const key = JSON.stringify(d.schedule);
    if (key !== store.scheduleKey) {
      store.scheduleKey = key;
      store.schedule = d.schedule;
      showSchedule();
      for (const vl of Object.values(vlists)) vl.touch(); // "waits for 02:00" on queued rows
    }
  }
  if (before) announce(incoming, before);
  store.loaded = true;
  scheduleRender();
}

// announce toasts what changed: downloads added elsewhere (the CLI, another
// tab), completions and failures. The first envelope only teaches the states.
function announce(incoming, before) {
  const added = [];
  const done = [];
  const failed = [];
  let endedOne = false;
  for (const j of incoming) {
    const was = before.get(j.id);
    const mine = localAdds.delete(j.id);
    if (was === undefined) {
      if (!mine) added.push(j);
      continue;
    }
    if (was === j.state) continue;
    if (j.state === 'completed') done.push(j);
    else if (j.state === 'failed') failed.push(j);
    if (ended(j.state)) endedOne = true;
  }
  if (added.length === 1) toast('info', I.t('toast.addedElsewhere'), jobName(added[0]));
  else if (added.length > 1) toast('info', I.t('toast.addedElsewhereN', { n: added.length, count: I.num(added.length) }));
  if (done.length === 1) toast('ok', I.t('toast.completed'), jobName(done[0]));
  else if (done.length > 1) toast('ok', I.t('toast.completedN', { n: done.length, count: I.num(done.length) }));
  for (const j of failed.slice(0, 2)) {
    toast('err', I.t('toast.failed'), h('div', {}, h('bdi', { class: 'toast-text', dir: 'auto', text: jobName(j) }),
      errorBlock(failureSentence(j.error_code), j.error)));
  }
  if (failed.length > 2) toast('err', I.t('toast.failedN', { n: failed.length, count: I.num(failed.length) }));
  if (endedOne) refreshTab();
}

// The event stream, or polling when the server refuses it (503 past its cap).
const sync = { es: null, mode: 'stream', timer: 0, opened: false, polling: false };

export function connect() {
  disconnect();
  if (document.visibilityState !== 'visible') return;
  if (sync.mode === 'poll') { poll(); return; }
  const url = store.rev !== null ? `/api/events?since=${store.rev}` : '/api/events';
  const es = new EventSource(url);
  sync.es = es;
  sync.opened = false;
  es.addEventListener('open', () => { sync.opened = true; setOnline(true); });
  es.addEventListener('downloads', (e) => {
    setOnline(true);
    let d;
    try { d = JSON.parse(e.data); } catch { return; }
    applyEnvelope(d);
  });
  es.addEventListener('error', () => {
    if (sync.es !== es) return;
    const refused = es.readyState === EventSource.CLOSED;
    const opened = sync.opened;
    disconnect();
    if (refused && opened === false && online) {
      // The server answered, but not with a stream: poll instead.
      sync.mode = 'poll';
      poll();
      return;
    }
    // The connection broke (the server stopped or restarted): try again
    // from the newest revision; a second failure in a row is "offline".
    if (!opened) setOnline(false);
    sync.timer = setTimeout(connect, opened ? 300 : 1500);
  });
}

export function disconnect() {
  clearTimeout(sync.timer);
  sync.timer = 0;
  if (sync.es) {
    sync.es.close();
    sync.es = null;
  }
}

async function poll() {
  clearTimeout(sync.timer);
  sync.timer = 0;
  if (document.visibilityState !== 'visible' || sync.polling) return;
  sync.polling = true;
  try {
    await refreshNow();
  } finally {
    sync.polling = false;
    if (sync.mode === 'poll' && document.visibilityState === 'visible') sync.timer = setTimeout(poll, 1000);
  }
}

// takeAdded puts downloads this page just added into the list at once,
// marked as its own (the page says so itself, not a second toast).
export function takeAdded(added) {
  for (const j of added) {
    localAdds.add(j.id);
    upsert(j);
  }
  if (added.length && !store.order.includes(added[0].id)) {
    for (const j of added) if (!store.order.includes(j.id)) store.order.push(j.id);
    dirty.lists = true;
  }
}

// refreshNow fetches the changes since the newest revision at once (after
// an action, so that its effect shows before the next event).
export async function refreshNow() {
  try {
    applyEnvelope(await api('GET', store.rev !== null ? `/api/downloads?since=${store.rev}` : '/api/downloads'));
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 0)) console.warn('reading downloads:', e.message);
  }
}
