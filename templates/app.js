// The web UI's behaviour: follows the download list over the event stream
// (GET /api/events: the changes since the last revision, docs/API.md), or
// polls ?since= once a second when the server refuses the stream, and only
// while the page is visible. Every word comes from the chosen language's
// table (i18n/); the long lists keep only the rows in view in the DOM
// (vlist.js).
import { $, h, svg, icon, bidi, setText, setAttr, readableURL, nameFromSource, fileIcon } from './dom.js';
import { languages, findLanguage, fallbackLanguage, makeI18n, parseDigits, latinDigits } from './i18n.js';
import { VirtualList } from './vlist.js';

let I = makeI18n(findLanguage(fallbackLanguage));

// ---------- address bar: language and token ----------

const startURL = new URL(location.href);

// A page opened as /?token=… (a server listening beyond loopback) keeps the
// token in memory for its API calls and takes it out of the address bar,
// so that it is not kept in the history (issue 18; the server's cookie
// carries the session from here on, the event stream included).
const token = startURL.searchParams.get('token') || '';
if (token) {
  startURL.searchParams.delete('token');
  history.replaceState(history.state, '', startURL.pathname + startURL.search + startURL.hash);
}

function storedLanguage() {
  try { return localStorage.getItem('omd.lang') || ''; } catch { return ''; }
}

function rememberLanguage(code) {
  try { localStorage.setItem('omd.lang', code); } catch { /* private mode: not remembered */ }
}

// ---------- API ----------

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code || '';
  }
}

async function api(method, path, body, signal) {
  const opts = { method, headers: { Accept: 'application/json' }, signal };
  if (token) opts.headers.Authorization = `Bearer ${token}`;
  if (body) opts.body = new URLSearchParams(body);
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    setOnline(false);
    throw new ApiError('server unreachable', 0);
  }
  setOnline(true);
  let data = null;
  try { data = await res.json(); } catch { /* an empty or non-JSON body */ }
  if (!res.ok) {
    throw new ApiError((data && data.error) || `HTTP ${res.status}`, res.status, data && data.error_code);
  }
  return data;
}

// ---------- failures in words ----------

// errorBlock is a failure as a sentence in the page's language, with the
// server's own (English) detail folded away in a closed <details>.
function errorBlock(sentence, detail) {
  const box = h('div', { class: 'err-block' }, h('p', { class: 'err-sentence' }, ...I.rich(sentence)));
  if (detail && detail !== sentence) {
    box.append(h('details', { class: 'err-detail' },
      h('summary', { text: I.t('err.details') }),
      h('bdi', { class: 'err-raw', dir: 'ltr', text: detail })));
  }
  return box;
}

// failureSentence is what a download's error_code means.
const failureSentence = (code) => I.errorSentence(code || 'unknown');

// apiSentence is what a refused API call means: its code when the table
// knows it, else what its HTTP status says.
function apiSentence(e) {
  if (e instanceof ApiError) {
    if (I.hasError(e.code)) return I.errorSentence(e.code);
    if (e.status === 0) return I.t('api.offline');
    const key = `api.${e.status}`;
    if (I.has(key)) return I.t(key);
    return I.t(e.status >= 500 ? 'api.5xx' : 'api.other');
  }
  return I.t('api.other');
}

// ---------- toasts, banner, confirm ----------

function toast(kind, title, body) {
  const box = $('toasts');
  while (box.children.length >= 3) box.firstElementChild.remove();
  const close = h('button', { type: 'button', class: 'icon-btn sm', 'aria-label': I.t('toast.close'), title: I.t('toast.close') }, icon('close'));
  let content = null;
  if (body instanceof Node) content = body;
  else if (body) content = h('bdi', { class: 'toast-text', dir: 'auto', text: body });
  const el = h('div', { class: `toast ${kind}`, role: kind === 'err' ? 'alert' : 'status' },
    h('div', { class: 'toast-body' }, h('span', { class: 'toast-title', text: title }), content),
    close);
  close.addEventListener('click', () => el.remove());
  box.append(el);
  setTimeout(() => el.remove(), kind === 'err' ? 9000 : 5000);
}

let online = true;
function setOnline(ok) {
  if (ok === online) return;
  online = ok;
  $('offline').hidden = ok;
  document.body.classList.toggle('is-offline', !ok);
}

function confirmDialog(title, text, okLabel) {
  const dlg = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || I.t('dialog.ok');
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

function reportError(e, what) {
  if (e instanceof ApiError && e.status === 0) return; // the banner says it
  if (e && e.name === 'AbortError') return;
  toast('err', what, errorBlock(apiSentence(e), e.message));
}

// ---------- states ----------

const finished = (s) => s === 'completed' || s === 'canceled';
const ended = (s) => finished(s) || s === 'failed';
const running = (s) => s === 'downloading' || s === 'verifying' || s === 'packaging';

// Which lists a download is in: Active has everything not finished (running,
// queued, paused, failed); Queue the queued ones, in order; Finished the
// completed and canceled ones.
function tabsOf(state) {
  if (state === 'queued') return 'active queue';
  if (finished(state)) return 'finished';
  return 'active';
}

// ---------- the download list: state and sync ----------

const store = {
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

const jobName = (j) => j.name || nameFromSource(j.source);

const lists = { active: [], queue: [], finished: [] };
const orderIndex = new Map(); // id → place in store.order (lists are sorted by it)
let listsDirty = true; // rebuild every list (the order changed, or jobs came or went)
const moves = []; // downloads that changed lists since the last render: [id, tabs before]
const localAdds = new Set(); // ids this page added (it says so itself)

// The header's counts, kept up to date change by change: counting 10,000
// downloads on every update would cost more than drawing the rows in view.
const counts = { running: 0, queued: 0, paused: 0, failed: 0, finished: 0 };

function bucketOf(state) {
  if (state === 'queued' || state === 'paused' || state === 'failed') return state;
  return finished(state) ? 'finished' : 'running';
}

// sums is the overall progress of what is still to do (queued, running,
// paused): bytes done, bytes in all (a download of unknown size counts what
// it has so far), and how many sizes are unknown yet. Kept the same way.
const sums = { done: 0, total: 0, unknown: 0 };

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
function upsert(j) {
  const old = store.jobs.get(j.id);
  if (old && typeof old.rev === 'number' && typeof j.rev === 'number' && j.rev < old.rev) return false;
  store.jobs.set(j.id, j);
  if (old) {
    counts[bucketOf(old.state)]--;
    addSums(old, -1);
  }
  counts[bucketOf(j.state)]++;
  addSums(j, 1);
  if (!old) listsDirty = true;
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
    listsDirty = true;
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
      listsDirty = true;
    } else if (membership) {
      const seen = new Set();
      store.order = store.order.filter((id) => store.jobs.has(id) && !seen.has(id) && seen.add(id));
      for (const j of incoming) if (!seen.has(j.id)) { store.order.push(j.id); seen.add(j.id); }
      listsDirty = true;
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

function connect() {
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

function disconnect() {
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

// refreshNow fetches the changes since the newest revision at once (after
// an action, so that its effect shows before the next event).
async function refreshNow() {
  try {
    applyEnvelope(await api('GET', store.rev !== null ? `/api/downloads?since=${store.rev}` : '/api/downloads'));
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 0)) console.warn('reading downloads:', e.message);
  }
}

// ---------- rendering the lists ----------

let renderQueued = false;
let firstRenderDone = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderAll();
  });
}

function rebuildLists() {
  const active = [];
  const queue = [];
  const fin = [];
  orderIndex.clear();
  store.order.forEach((id, i) => orderIndex.set(id, i));
  for (const id of store.order) {
    const j = store.jobs.get(id);
    if (!j) continue;
    if (j.state === 'queued') {
      queue.push(id);
      active.push(id);
    } else if (finished(j.state)) fin.push(id);
    else active.push(id);
  }
  lists.active = active;
  lists.queue = queue;
  lists.finished = fin;
  for (const tab of Object.keys(lists)) {
    if (selected[tab].size) {
      const ids = new Set(lists[tab]);
      for (const id of selected[tab]) if (!ids.has(id)) selected[tab].delete(id);
    }
    vlists[tab].setItems(lists[tab]);
  }
  listsDirty = false;
  moves.length = 0;
  queueMoved();
}

// queueMoved: the queued rows of Active say their place in the queue.
function queueMoved() {
  for (const row of vlists.active.rendered()) if (row.dataset.state === 'queued') row._item = null;
}

// placeIn is where id is, or would go, in a list sorted by queue order.
function placeIn(list, id) {
  const want = orderIndex.get(id);
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (orderIndex.get(list[mid]) < want) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// applyMoves takes downloads whose state moved them between lists (one
// finished, one left the queue) out of one list and into another, without
// going over the other 10,000.
function applyMoves() {
  for (const [id, before] of moves) {
    const j = store.jobs.get(id);
    if (!j || !orderIndex.has(id)) { listsDirty = true; break; }
    const now = tabsOf(j.state);
    for (const tab of Object.keys(lists)) {
      const was = before.includes(tab);
      const is = now.includes(tab);
      if (was === is) continue;
      const list = lists[tab];
      const at = placeIn(list, id);
      if (was && list[at] === id) {
        list.splice(at, 1);
        vlists[tab].removedAt(at);
        selected[tab].delete(id);
      } else if (is && list[at] !== id) {
        list.splice(at, 0, id);
        vlists[tab].insertedAt(at);
      }
    }
  }
  const queueChanged = moves.some(([id, before]) => before.includes('queue') !== tabsOf(store.jobs.get(id)?.state).includes('queue'));
  moves.length = 0;
  if (listsDirty) rebuildLists();
  else if (queueChanged) queueMoved();
}

function renderAll() {
  if (listsDirty) rebuildLists();
  else if (moves.length) applyMoves();
  for (const tab of Object.keys(lists)) {
    const n = lists[tab].length;
    $(`empty-${tab}`).hidden = n > 0 || !store.loaded;
    $(`list-${tab}`).hidden = n === 0;
    setText($(`count-${tab}`), I.num(n));
    if (tab === currentTab) vlists[tab].render();
    updateBulk(tab);
  }
  renderHeader();
  if (!firstRenderDone && store.loaded) {
    firstRenderDone = true;
    performance.mark('omd:first-render');
  }
}

// renderHeader: the counts of the Active tab (they add up to its count),
// and the progress of everything not finished yet.
function renderHeader() {
  const c = counts;
  const shown = ['running', 'queued', 'paused', 'failed'].filter((k) => c[k] > 0 || k === 'running');
  const key = `${I.lang.code}|${shown.map((k) => `${k}${c[k]}`).join('|')}`;
  const box = $('overall-counts');
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...shown.map((k) => h('span', { class: `oc oc-${k}`, 'data-n': String(c[k]), text: I.t(`overall.${k}`, { n: c[k], count: I.num(c[k]) }) })));
  }

  // Bytes from the page's own sums (the server's summary has no total as
  // soon as one queued download's size is unknown, which is most queues).
  const { done, total, unknown } = sums;
  let speed = store.summary && typeof store.summary.speed === 'number' ? store.summary.speed : store.totalSpeed;
  if (typeof speed !== 'number') {
    speed = 0;
    for (const id of lists.active) {
      const j = store.jobs.get(id);
      if (running(j.state) && j.speed > 0) speed += j.speed;
    }
  }
  const eta = speed > 0 && total > done ? (total - done) / speed : -1;
  const figures = [];
  if (total > 0) figures.push(unknown ? I.t('unit.ofAtLeast', { done: I.bytes(done), total: I.bytes(total) }) : I.progressBytes(done, total));
  if (c.running > 0) {
    figures.push(I.speed(speed));
    if (eta < 0) figures.push(I.t('overall.leftUnknown'));
    else figures.push(I.t(unknown ? 'overall.leftAtLeast' : 'overall.left', { time: I.duration(eta) }));
  }
  setText($('overall-figures'), figures.join(I.t('sep')));
  const bar = $('overall-bar');
  const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
  bar.hidden = total <= 0;
  setFill(bar.firstElementChild, pct / 100);
  setAttr(bar, 'aria-valuenow', String(Math.floor(pct)));
  setAttr(bar, 'aria-valuetext', I.pct(Math.floor(pct) / 100));
  const title = c.running ? I.t('app.titleRunning', { n: c.running, count: I.num(c.running) }) : I.t('app.pageTitle');
  if (document.title !== title) document.title = title;

  const conc = $('concurrency');
  if (store.concurrency !== null && !concurrencyPending && document.activeElement !== conc) {
    const v = I.num(store.concurrency);
    if (conc.value !== v) conc.value = v;
  }
  // What the buttons act on, from the same counts (Active holds nothing
  // else that they could act on).
  $('pause-all').disabled = c.running + c.queued === 0;
  $('resume-all').disabled = c.paused === 0;
  $('cancel-all').disabled = c.running + c.queued + c.paused === 0;
  $('clear-finished').disabled = lists.finished.length === 0;
}

// ---------- job rows ----------

const limitOption = (v) => h('option', { value: String(v), text: v ? I.t('limit.rowMax', { speed: I.speed(v) }) : I.t('limit.rowNone') });

// fillLimitChoices gives a row's speed selector every choice, when a person
// reaches for it.
function fillLimitChoices(e) {
  const sel = e.target;
  if (!(sel instanceof HTMLSelectElement) || !sel.classList.contains('job-limit') || sel.options.length > 1) return;
  const rate = Number(sel.dataset.rate) || 0;
  const values = limitChoices.includes(rate) ? limitChoices : [...limitChoices, rate].sort((a, b) => a - b);
  sel.replaceChildren(...values.map(limitOption));
  sel.value = String(rate);
}

// setFill shows a fraction on a progress bar (see .progress-fill).
function setFill(fill, fraction) {
  const v = `scaleX(${Math.max(0, Math.min(1, fraction)).toFixed(4)})`;
  if (fill.style.transform !== v) fill.style.transform = v;
}

const isPhone = window.matchMedia('(max-width: 640px)');
const isNarrow = window.matchMedia('(max-width: 860px)');

// rowBase is a row's usual height at this width (asking matchMedia for each
// of 10,000 rows would cost more than the rows in view).
let rowBase = 78;
function measureRowBase() {
  rowBase = isPhone.matches ? 168 : (isNarrow.matches ? 130 : 78);
}

function estimateRow(j) {
  let px = rowBase;
  if (!j) return px;
  if (j.error && j.state === 'failed') px += 44;
  if (j.kind === 'model' && Array.isArray(j.layers) && j.layers.length) px += 28;
  if (j.outcome || j.reused_bytes > 0 || j.models_dir) px += 22;
  return px;
}

const openLayers = new Set(); // ids whose layer list is unfolded

function buildRow(tab, id, j) {
  const check = h('input', { type: 'checkbox', class: 'row-check' });
  const fill = h('div', { class: 'progress-fill' });
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, fill);
  const layers = h('details', { class: 'job-layers', hidden: true }, h('summary', {}), h('ul', { class: 'layer-list' }));
  layers.addEventListener('toggle', () => {
    if (layers.open) openLayers.add(id); else openLayers.delete(id);
  });
  const row = h('li', { class: 'job', 'data-id': id },
    h('div', { class: 'job-sel' }, check),
    h('div', { class: 'job-main' },
      h('div', { class: 'job-title' },
        h('span', { class: 'job-kind' }, icon('file')),
        h('div', { class: 'job-name-wrap' }, h('bdi', { class: 'job-name', dir: 'auto' }), h('bdi', { class: 'job-source', dir: 'auto' })),
        h('span', { class: 'badge' })),
      h('div', { class: 'job-progress-line' }, bar, h('span', { class: 'job-pct' })),
      h('p', { class: 'job-note', hidden: true }),
      h('div', { class: 'job-error', hidden: true }),
      layers),
    h('div', { class: 'job-size' }),
    h('div', { class: 'job-speed' }, h('span', { class: 'speed' }), h('span', { class: 'job-eta' }),
      h('select', { class: 'job-limit', 'data-id': id, hidden: true })),
    h('div', { class: 'job-actions' }));
  row._tab = tab;
  check.addEventListener('change', () => {
    if (check.checked) selected[tab].add(id); else selected[tab].delete(id);
    row.classList.toggle('selected', check.checked);
    updateBulk(tab);
  });
  if (openLayers.has(id)) layers.open = true;
  return row;
}

function updateRow(row, j, index, count) {
  const tab = row._tab;
  const name = j.kind === 'model' ? (j.name || j.source) : jobName(j);
  const q = (cls) => row.querySelector(cls);
  row.dataset.state = j.state;

  if (row.dataset.name !== name) {
    row.dataset.name = name;
    const nameEl = q('.job-name');
    nameEl.textContent = name;
    nameEl.title = name;
    q('.row-check').setAttribute('aria-label', I.t('row.select', { name }));
    q('.progress').setAttribute('aria-label', I.t('row.progress', { name }));
    q('.job-limit').setAttribute('aria-label', I.t('limit.rowLabel', { name }));
    q('.job-limit').title = I.t('limit.rowTitle');
  }
  const src = j.kind === 'model' ? (j.models_dir ? '' : (j.source !== name ? j.source : '')) : readableURL(j.source);
  const srcEl = q('.job-source');
  if (srcEl.textContent !== src) { srcEl.textContent = src; srcEl.title = src; srcEl.hidden = !src; }

  const iconName = fileIcon(j.kind, j.name || j.path || j.source);
  const kind = q('.job-kind');
  if (kind.dataset.icon !== iconName) {
    kind.dataset.icon = iconName;
    kind.className = `job-kind ${iconName === 'model' ? 'model' : `ft-${iconName}`}`;
    kind.title = I.t(j.kind === 'model' ? 'kind.model' : 'kind.file');
    kind.replaceChildren(icon(iconName));
  }

  const badge = q('.badge');
  const phaseKey = `phase.${j.phase}`;
  let label = j.kind === 'model' && running(j.state) && j.phase && I.has(phaseKey) ? I.t(phaseKey) : I.t(`state.${j.state}`);
  if (j.state === 'completed' && (j.outcome === 'unchanged' || j.outcome === 'unchecked')) label = I.t('state.unchanged');
  setText(badge, label);
  badge.className = `badge ${j.state}`;

  const total = j.bytes_total;
  const hasTotal = total > 0;
  const complete = j.state === 'completed';
  const pct = complete ? 100 : (hasTotal ? Math.min(100, (j.bytes_done / total) * 100) : 0);
  const bar = q('.progress');
  bar.className = `progress ${j.state}${!hasTotal && running(j.state) ? ' indeterminate' : ''}`;
  if (hasTotal || complete) {
    setAttr(bar, 'aria-valuenow', String(Math.floor(pct)));
    setAttr(bar, 'aria-valuetext', I.pct(pct / 100));
  } else {
    setAttr(bar, 'aria-valuenow', null);
    setAttr(bar, 'aria-valuetext', I.t('unit.unknown'));
  }
  setFill(q('.progress-fill'), hasTotal || complete ? pct / 100 : 0);
  setText(q('.job-pct'), hasTotal || complete ? I.pct(Math.floor(pct) / 100) : '');

  // Notes: an unchanged or updated file, bytes reused, the Ollama folder.
  const notes = [];
  if (j.outcome === 'unchanged') notes.push(I.tn('note.unchanged'));
  if (j.outcome === 'unchecked') notes.push(I.tn('note.unchecked'));
  if (j.outcome === 'updated') notes.push(I.tn('note.updated', { previous: bidi(j.previous_path || '', 'path') }));
  if (j.reused_bytes > 0) notes.push(I.tn('note.reused', { size: I.bytes(j.reused_bytes) }));
  if (j.models_dir) notes.push(I.tn('note.modelsDir', { dir: h('bdi', { dir: 'ltr', class: 'path', text: j.models_dir }) }));
  const noteEl = q('.job-note');
  const noteKey = `${j.outcome || ''}|${j.previous_path || ''}|${j.reused_bytes || 0}|${j.models_dir || ''}`;
  if (noteEl.dataset.key !== noteKey) {
    noteEl.dataset.key = noteKey;
    noteEl.hidden = notes.length === 0;
    noteEl.replaceChildren(...notes.flatMap((n, i) => (i ? [I.t('sep'), ...n] : n)));
  }

  const err = q('.job-error');
  const showErr = j.state === 'failed' && (j.error || j.error_code);
  const errKey = showErr ? `${j.error_code || ''}|${j.error || ''}` : '';
  if (err.dataset.key !== errKey) {
    err.dataset.key = errKey;
    err.hidden = !showErr;
    err.replaceChildren(...(showErr ? [errorBlock(failureSentence(j.error_code), j.error)] : []));
  }

  renderLayers(row, j);

  let size;
  if (complete) size = I.bytes(hasTotal ? total : j.bytes_done);
  else if (hasTotal) size = I.progressBytes(j.bytes_done, total);
  else size = j.bytes_done > 0 ? I.bytes(j.bytes_done) : '—';
  setText(q('.job-size'), size);

  const isRunning = running(j.state);
  setText(q('.speed'), isRunning ? I.speed(j.speed) : '');
  let eta = '';
  if (isRunning) eta = j.eta_seconds >= 0 ? I.t('row.left', { time: I.duration(j.eta_seconds) }) : I.t('row.leftUnknown');
  else if (complete && j.finished_at) eta = I.date(j.finished_at);
  else if (j.state === 'queued') {
    const sched = store.schedule;
    eta = sched && sched.start && sched.open === false
      ? I.t('row.waitsWindow', { time: I.clock(sched.start) })
      : I.t('row.queuePlace', { n: I.num((tab === 'queue' ? index : placeIn(lists.queue, j.id)) + 1) });
  }
  setText(q('.job-eta'), eta);

  // A download's own speed limit, for what has not finished yet.
  const limitSel = q('.job-limit');
  const rate = typeof j.limit_rate === 'number' ? j.limit_rate : 0;
  limitSel.hidden = typeof j.limit_rate !== 'number' || ended(j.state);
  if (!limitSel.hidden && limitSel.dataset.rate !== String(rate) && document.activeElement !== limitSel) {
    // Only the chosen value until the selector is used: ten options in each
    // of the rows in view are most of a row's nodes.
    limitSel.dataset.rate = String(rate);
    limitSel.replaceChildren(limitOption(rate));
    limitSel.value = String(rate);
  }

  const key = `${j.state}|${tab}|${index === 0}|${index === count - 1}|${j.path ? 1 : 0}`;
  if (row.dataset.actions !== key) {
    row.dataset.actions = key;
    const box = q('.job-actions');
    const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.action : '';
    box.replaceChildren(...actionButtons(tab, j, name, index, count));
    if (hadFocus) (box.querySelector(`[data-action="${hadFocus}"]`) || box.querySelector('button, a') || row.querySelector('.row-check')).focus();
  }
  const check = q('.row-check');
  check.checked = selected[tab].has(j.id);
  row.classList.toggle('selected', check.checked);
  // What decides the row's height; progress alone does not.
  return `${row.dataset.actions}|${noteKey}|${errKey}|${row.querySelector('.job-layers').dataset.key || ''}|${row.querySelectorAll('details[open]').length}|${eta ? 1 : 0}|${limitSel.hidden}`;
}

function layerType(type) {
  const short = String(type || '').replace(/^application\/vnd\.(ollama|docker)\.(image|container\.image)\./, '').replace(/\.v\d.*$/, '');
  return I.has(`layer.${short}`) ? I.t(`layer.${short}`) : null;
}

// renderLayers lists a model's layers: what each is, its size, how far it
// is, and whether it was already on disk.
function renderLayers(row, j) {
  const det = row.querySelector('.job-layers');
  const layers = j.kind === 'model' && Array.isArray(j.layers) ? j.layers : [];
  det.hidden = layers.length === 0;
  if (!layers.length) return;
  const reused = layers.filter((l) => l.reused).length;
  const key = layers.map((l) => `${l.digest}:${l.done}:${l.reused ? 1 : 0}`).join(',');
  if (det.dataset.key === key) return;
  det.dataset.key = key;
  const sum = det.querySelector('summary');
  sum.replaceChildren(icon('layers'), h('span', {
    text: reused ? I.t('layers.summaryReused', { n: layers.length, count: I.num(layers.length), reused: I.num(reused) })
      : I.t('layers.summary', { n: layers.length, count: I.num(layers.length) }),
  }));
  det.querySelector('ul').replaceChildren(...layers.map((l) => {
    const what = layerType(l.type);
    const size = l.size > 0 ? l.size : 0;
    const done = l.reused ? size : Math.min(size, l.done > 0 ? l.done : 0);
    let state;
    if (l.reused) state = h('span', { class: 'layer-state ok' }, icon('check'), I.t('layers.reused'));
    else if (size > 0 && done >= size) state = h('span', { class: 'layer-state ok' }, icon('check'), I.t('layers.done'));
    else state = h('span', { class: 'layer-state', text: size > 0 ? I.pct(Math.floor((done / size) * 100) / 100) : '' });
    return h('li', {},
      h('span', { class: 'layer-type' }, what || h('bdi', { dir: 'ltr', text: String(l.type || '') })),
      h('bdi', { class: 'layer-digest', dir: 'ltr', title: l.digest || '', text: String(l.digest || '').replace(/^sha256:/, '').slice(0, 12) }),
      h('span', { class: 'layer-size', text: I.bytes(size) }),
      state);
  }));
}

function actionButtons(tab, j, name, index, count) {
  const b = (action, iconName, label, extra) => {
    const text = I.t('row.actionOn', { action: I.t(label), name });
    return h('button', { type: 'button', class: 'icon-btn', 'aria-label': text, title: text, 'data-action': action, ...extra }, icon(iconName));
  };
  const out = [];
  if (tab === 'queue') {
    out.push(
      b('top', 'top', 'act.top', { disabled: index === 0 }),
      b('up', 'up', 'act.up', { disabled: index === 0 }),
      b('down', 'down', 'act.down', { disabled: index === count - 1 }),
      b('bottom', 'bottom', 'act.bottom', { disabled: index === count - 1 }),
      h('span', { class: 'sep', 'aria-hidden': 'true' }));
  }
  switch (j.state) {
    case 'queued':
    case 'downloading':
      out.push(b('pause', 'pause', 'act.pause'), b('cancel', 'stop', 'act.cancel', { class: 'icon-btn danger' }));
      break;
    case 'verifying':
    case 'packaging':
      out.push(b('cancel', 'stop', 'act.cancel', { class: 'icon-btn danger' }));
      break;
    case 'paused':
      out.push(b('resume', 'play', 'act.resume'), b('cancel', 'stop', 'act.cancel', { class: 'icon-btn danger' }));
      break;
    case 'failed':
    case 'canceled':
      out.push(b('retry', 'retry', 'act.retry'), b('remove', 'trash', 'act.remove', { class: 'icon-btn danger' }));
      break;
    case 'completed':
      if (j.path) {
        const label = I.t('row.actionOn', { action: I.t('act.open'), name });
        out.push(h('a', { class: 'icon-btn', href: fileURL(j.path), download: '', 'aria-label': label, title: label, 'data-action': 'open' }, icon('download')));
      }
      out.push(
        b('remove', 'trash', 'act.remove'),
        b('remove-file', 'file-x', 'act.removeFile', { class: 'icon-btn danger' }));
      break;
    default:
      break;
  }
  return out;
}

function fileURL(path) {
  return `/api/library/file/${String(path).split('/').map(encodeURIComponent).join('/')}`;
}

const vlists = {};
const selected = { active: new Set(), queue: new Set(), finished: new Set() };

function makeLists() {
  for (const tab of Object.keys(selected)) {
    vlists[tab] = new VirtualList($(`list-${tab}`), {
      get: (id) => store.jobs.get(id),
      build: (id, j) => buildRow(tab, id, j),
      update: updateRow,
      estimate: estimateRow,
      positional: tab === 'queue',
    });
  }
}

// ---------- actions ----------

async function doAction(id, action, quiet) {
  const j = store.jobs.get(id);
  const name = j ? jobName(j) : id;
  const base = `/api/download/${encodeURIComponent(id)}`;
  try {
    let r;
    switch (action) {
      case 'pause': case 'resume': case 'cancel': case 'retry':
        r = await api('POST', `${base}/${action}`);
        if (r && r.id === id) upsert(r);
        break;
      case 'remove':
        await api('POST', `${base}/remove`, { delete_file: 'false' });
        break;
      case 'remove-file':
        if (!quiet && !await confirmDialog(I.t('confirm.deleteFileTitle'), I.t('confirm.deleteFile', { name }), I.t('confirm.delete'))) return;
        await api('POST', `${base}/remove`, { delete_file: 'true' });
        break;
      case 'top': case 'up': case 'down': case 'bottom':
        await api('POST', `${base}/move`, { to: action });
        break;
      default:
        return;
    }
  } catch (e) {
    if (!quiet) reportError(e, I.t('toast.actionFailed', { name }));
    throw e;
  } finally {
    if (!quiet) { scheduleRender(); refreshNow(); }
  }
}

async function onListChange(e) {
  const sel = e.target.closest('select.job-limit');
  if (!sel) return;
  const j = store.jobs.get(sel.dataset.id);
  const name = j ? jobName(j) : sel.dataset.id;
  try {
    await api('POST', `/api/download/${encodeURIComponent(sel.dataset.id)}/limit`, { limit_rate: sel.value });
    const v = Number(sel.value);
    toast('info', I.t('toast.quoted', { name }), v > 0 ? I.t('toast.rowLimit', { speed: I.speed(v) }) : I.t('toast.rowNoLimit'));
  } catch (err) {
    reportError(err, I.t('toast.rowLimitFailed', { name }));
  } finally {
    refreshNow();
  }
}

function onListClick(e) {
  const btn = e.target.closest('button[data-action]');
  if (!btn) return;
  const row = btn.closest('li.job');
  doAction(row.dataset.id, btn.dataset.action).catch(() => {});
}

const bulkAllowed = {
  pause: (s) => s === 'queued' || s === 'downloading',
  resume: (s) => s === 'paused',
  retry: (s) => s === 'failed' || s === 'canceled',
  cancel: (s) => !ended(s),
  remove: (s) => ended(s),
  top: (s) => s === 'queued',
  bottom: (s) => s === 'queued',
};

function updateBulk(tab) {
  const items = lists[tab];
  const n = selected[tab].size;
  $(`bulk-${tab}`).hidden = n === 0;
  setText($(`bulk-count-${tab}`), I.t('select.count', { n, count: I.num(n) }));
  const all = $(`select-all-${tab}`);
  all.checked = n > 0 && n === items.length;
  all.indeterminate = n > 0 && n < items.length;
  all.disabled = items.length === 0;
  if (n === 0) return;
  for (const btn of $(`bulk-${tab}`).querySelectorAll('[data-bulk]')) {
    let ok = false;
    for (const id of selected[tab]) {
      const j = store.jobs.get(id);
      if (j && bulkAllowed[btn.dataset.bulk](j.state)) { ok = true; break; }
    }
    btn.disabled = !ok;
  }
}

function syncSelection(tab) {
  for (const row of vlists[tab].rendered()) {
    const on = selected[tab].has(row.dataset.id);
    row.querySelector('.row-check').checked = on;
    row.classList.toggle('selected', on);
  }
  updateBulk(tab);
}

async function runBulk(tab, action) {
  const targets = lists[tab].map((id) => store.jobs.get(id)).filter((j) => j && selected[tab].has(j.id) && bulkAllowed[action](j.state));
  if (!targets.length) return;
  if (action === 'cancel' && !await confirmDialog(I.t('confirm.cancelTitle'), I.t('confirm.cancelN', { n: targets.length, count: I.num(targets.length) }), I.t('confirm.cancelOk'))) return;
  // "top" walks the list bottom-up so the selection keeps its order.
  const ordered = action === 'top' ? targets.slice().reverse() : targets;
  let failed = 0;
  for (const j of ordered) {
    try { await doAction(j.id, action, true); } catch { failed++; }
  }
  if (action === 'remove') selected[tab].clear();
  if (failed) toast('err', I.t('toast.partial'), I.t('toast.partialN', { failed: I.num(failed), n: targets.length, count: I.num(targets.length) }));
  await refreshNow();
  syncSelection(tab);
}

async function globalAction(which) {
  if (which === 'cancel-all' && !await confirmDialog(I.t('confirm.cancelAllTitle'), I.t('confirm.cancelAll'), I.t('confirm.cancelAllOk'))) return;
  try {
    const r = await api('POST', `/api/downloads/${which}`);
    const n = (r && r.count) || 0;
    toast('info', I.t(`bulk.${which}.title`), I.t(`bulk.${which}.done`, { n, count: I.num(n) }));
  } catch (e) {
    reportError(e, I.t('toast.failedAction'));
  }
  refreshNow();
}

// ---------- tabs ----------

const tabs = ['active', 'queue', 'finished', 'library', 'history', 'stats'];
let currentTab = 'active';

function showTab(name, focus) {
  if (!tabs.includes(name)) name = 'active';
  currentTab = name;
  for (const t of tabs) {
    const tab = $(`tab-${t}`);
    const on = t === name;
    tab.setAttribute('aria-selected', on ? 'true' : 'false');
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
  }
  if (focus) $(`tab-${name}`).focus();
  if (location.hash !== `#${name}`) history.replaceState(history.state, '', `#${name}`);
  if (vlists[name]) vlists[name].render();
  refreshTab();
}

function refreshTab() {
  clearTimeout(mirrorTimer);
  if (currentTab === 'library') { loadLibrary(); loadMirror(); }
  else if (currentTab === 'history') loadHistory();
  else if (currentTab === 'stats') loadStats();
}

function onTabKey(e) {
  const i = tabs.indexOf(currentTab);
  // In RTL the next tab is to the left.
  const rtl = getComputedStyle(document.documentElement).direction === 'rtl';
  let j = -1;
  if (e.key === 'ArrowLeft') j = rtl ? i + 1 : i - 1;
  else if (e.key === 'ArrowRight') j = rtl ? i - 1 : i + 1;
  else if (e.key === 'Home') j = 0;
  else if (e.key === 'End') j = tabs.length - 1;
  else return;
  e.preventDefault();
  showTab(tabs[(j + tabs.length) % tabs.length], true);
}

// ---------- add box ----------

async function onAdd(e) {
  e.preventDefault();
  const errBox = $('add-error');
  errBox.hidden = true;
  const text = $('add-url').value.trim();
  const lines = text.split('\n').map((s) => s.trim()).filter(Boolean);
  const retriesText = $('add-retries').value.trim();
  const retries = retriesText === '' ? '' : parseDigits(retriesText);
  const sha = latinDigits($('add-sha').value.trim()).toLowerCase();
  const fail = (content, field) => {
    errBox.replaceChildren(content);
    errBox.hidden = false;
    $(field).focus();
  };
  if (!lines.length) return fail(I.t('add.errEmpty'), 'add-url');
  if (retries !== '' && !(retries >= 0 && retries <= 100)) return fail(I.t('add.errRetries'), 'add-retries');
  if (sha && !/^[0-9a-f]{64}$/.test(sha)) return fail(h('span', {}, ...I.tn('add.errSha')), 'add-sha');
  if (sha && lines.length > 1) return fail(h('span', {}, ...I.tn('add.errShaMany')), 'add-sha');
  const body = { url: lines.join('\n') };
  if (retries !== '') body.retries = String(retries);
  if (sha) body.sha256 = sha;
  const btn = $('add-submit');
  btn.disabled = true;
  try {
    const r = await api('POST', '/api/download/add', body);
    const added = (r && r.downloads) || [];
    for (const j of added) {
      localAdds.add(j.id);
      upsert(j);
    }
    if (added.length && !store.order.includes(added[0].id)) {
      for (const j of added) if (!store.order.includes(j.id)) store.order.push(j.id);
      listsDirty = true;
    }
    $('add-url').value = '';
    $('add-sha').value = '';
    hidePreview();
    toast('info', added.length > 1 ? I.t('toast.addedN', { n: added.length, count: I.num(added.length) }) : I.t('toast.added'),
      added.length === 1 ? jobName(added[0]) : '');
    if (!['active', 'queue'].includes(currentTab)) showTab('active');
    if (isPhone.matches) foldAdd(true);
    scheduleRender();
  } catch (err) {
    fail(errorBlock(err instanceof ApiError && err.status === 0 ? I.t('api.offline') : addSentence(err), err.message), 'add-url');
  } finally {
    btn.disabled = false;
    refreshNow();
  }
}

function addSentence(err) {
  if (err instanceof ApiError && I.hasError(err.code)) return I.errorSentence(err.code);
  if (err instanceof ApiError && err.status === 400) return I.t('add.errServer');
  return apiSentence(err);
}

// On a phone the add form folds away so the list is on the first screen.
function foldAdd(folded) {
  $('add-card').classList.toggle('folded', folded);
  const t = $('add-toggle');
  t.setAttribute('aria-expanded', String(!folded));
  t.replaceChildren(icon(folded ? 'plus' : 'close'), h('span', { text: I.t(folded ? 'add.open' : 'add.close') }));
}

// The model preview: what a typed model name is, before it is added.
const preview = { timer: 0, ctrl: null, name: '' };

function looksLikeModel(s) {
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && /^[A-Za-z0-9][\w.\-/]*(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?$/.test(s) && s.length <= 300;
}

function onAddInput() {
  clearTimeout(preview.timer);
  const lines = $('add-url').value.split('\n').map((s) => s.trim()).filter(Boolean);
  const name = lines.length === 1 && looksLikeModel(lines[0]) ? lines[0] : '';
  if (!name) { hidePreview(); return; }
  if (name === preview.name) return;
  preview.timer = setTimeout(() => showPreview(name), 400);
}

function hidePreview() {
  clearTimeout(preview.timer);
  if (preview.ctrl) preview.ctrl.abort();
  preview.ctrl = null;
  preview.name = '';
  $('model-preview').hidden = true;
  $('model-preview').replaceChildren();
}

async function showPreview(name) {
  if (preview.ctrl) preview.ctrl.abort();
  const ctrl = new AbortController();
  preview.ctrl = ctrl;
  preview.name = name;
  const box = $('model-preview');
  let m;
  try {
    m = await api('GET', `/api/model/show?name=${encodeURIComponent(name)}`, null, ctrl.signal);
  } catch (e) {
    if (ctrl.signal.aborted) return;
    preview.ctrl = null;
    // Not a model name (400), or a server without the preview: say nothing.
    if (!(e instanceof ApiError) || e.status === 400 || e.status === 0 || (e.status === 404 && e.code !== 'model_not_found') || e.status === 405) {
      box.hidden = true;
      return;
    }
    box.replaceChildren(errorBlock(I.hasError(e.code) ? I.errorSentence(e.code) : apiSentence(e), e.message));
    box.className = 'model-preview err';
    box.hidden = false;
    return;
  }
  preview.ctrl = null;
  if (!m) return;
  const chips = [];
  const chip = (key, value) => value && chips.push(h('span', { class: 'chip' }, h('span', { class: 'chip-k', text: I.t(key) }), h('bdi', { dir: 'ltr', text: String(value) })));
  chip('model.params', m.parameters);
  chip('model.quant', m.quantization);
  chip('model.family', m.family);
  const layers = Array.isArray(m.layers) ? m.layers.length : 0;
  box.className = 'model-preview';
  box.replaceChildren(
    h('span', { class: 'job-kind model' }, icon('model')),
    h('div', { class: 'mp-main' },
      h('div', { class: 'mp-title' },
        h('span', { class: 'mp-size', text: I.bytes(m.size) }),
        h('bdi', { class: 'mp-name', dir: 'ltr', text: m.display || m.name || name }),
        m.id ? h('bdi', { class: 'mp-id', dir: 'ltr', text: String(m.id).replace(/^sha256:/, '').slice(0, 12) }) : null),
      h('div', { class: 'mp-chips' }, ...chips,
        layers ? h('span', { class: 'chip' }, I.t('layers.summary', { n: layers, count: I.num(layers) })) : null,
        m.license ? h('span', { class: 'chip', title: String(m.license).slice(0, 500) }, h('span', { class: 'chip-k', text: I.t('model.license') }),
          h('bdi', { dir: 'ltr', text: String(m.license).split('\n')[0].slice(0, 60) })) : null,
        m.on_disk > 0 ? h('span', { class: 'chip ok' }, icon('check'),
          m.on_disk >= m.size ? I.t('model.onDiskAll') : I.t('model.onDisk', { size: I.bytes(m.on_disk) })) : null)));
  box.hidden = false;
}

// ---------- settings: concurrency, speed limit, schedule ----------

let concurrencyPending = false;
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
const limitChoices = [0, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 5 << 20, 10 << 20, 20 << 20, 50 << 20];
let globalLimit = 0;

function showLimit(rate) {
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

async function loadSettings() {
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
function showSchedule() {
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

// ---------- library ----------

async function loadLibrary() {
  let data;
  try {
    data = await api('GET', '/api/library');
  } catch (e) {
    reportError(e, I.t('toast.libraryUnread'));
    return;
  }
  const files = (data && data.files) || [];
  $('library-body').replaceChildren(...files.map((f) => {
    const label = I.t('row.actionOn', { action: I.t('act.open'), name: f.name });
    const ic = fileIcon(f.kind, f.name);
    return h('tr', { 'data-path': f.path },
      h('td', { class: 'name-cell' },
        h('div', { class: 'job-title' },
          h('span', { class: `job-kind ${ic === 'model' ? 'model' : `ft-${ic}`}` }, icon(ic)),
          h('div', { class: 'job-name-wrap' },
            bidi(f.name, 'job-name'),
            f.path !== f.name ? bidi(f.path, 'job-source') : null))),
      h('td', { class: 'num', 'data-label': I.t('col.type') }, kindLabel(f.kind)),
      h('td', { class: 'num', 'data-label': I.t('col.size'), text: I.bytes(f.size) }),
      h('td', { class: 'num', 'data-label': I.t('col.date'), text: I.date(f.modified) }),
      h('td', { class: 'actions' },
        f.kind === 'model' ? h('button', { type: 'button', class: 'btn sm', 'data-install': f.path, title: I.t('library.installTitle', { name: f.name }) },
          icon('install'), h('span', {}, ...I.tn('library.install'))) : null,
        h('a', { class: 'icon-btn', href: fileURL(f.path), download: '', 'aria-label': label, title: label }, icon('download')),
        h('button', { type: 'button', class: 'icon-btn danger', 'data-delete': f.path, 'aria-label': I.t('library.deleteOn', { name: f.name }), title: I.t('library.deleteOn', { name: f.name }) }, icon('trash'))));
  }));
  $('library-table').hidden = files.length === 0;
  $('empty-library').hidden = files.length > 0;
  const total = files.reduce((a, f) => a + (f.size > 0 ? f.size : 0), 0);
  $('library-summary').textContent = files.length ? I.t('library.summary', { n: files.length, count: I.num(files.length), size: I.bytes(total) }) : '';

  // Models, as `ollama list` shows them: name:tag, ID, size, parameters,
  // quantization, modified.
  const models = Array.isArray(data && data.models) ? data.models : [];
  $('models-block').hidden = models.length === 0;
  $('models-body').replaceChildren(...models.map((m) => h('tr', {},
    h('td', { class: 'name-cell' }, h('div', { class: 'job-title' },
      h('span', { class: 'job-kind model' }, icon('model')),
      h('div', { class: 'job-name-wrap' }, bidi(m.name, 'job-name'), m.path ? bidi(Array.isArray(m.parts) && m.parts.length > 1 ? `${m.path} (+${m.parts.length - 1})` : m.path, 'job-source') : null))),
    h('td', { class: 'num', 'data-label': I.t('models.id') }, h('bdi', { dir: 'ltr', class: 'mono', text: String(m.id || '').replace(/^sha256:/, '').slice(0, 12) })),
    h('td', { class: 'num', 'data-label': I.t('models.size'), text: I.bytes(m.size) }),
    h('td', { class: 'num', 'data-label': I.t('models.params') }, m.parameters ? h('bdi', { dir: 'ltr', text: m.parameters }) : '—'),
    h('td', { class: 'num', 'data-label': I.t('models.quant') }, m.quantization ? h('bdi', { dir: 'ltr', text: m.quantization }) : '—'),
    h('td', { class: 'num', 'data-label': I.t('models.modified'), text: I.date(m.modified) }))));
}

// kindLabel: "model", a lower-case extension, or "file" (GET /api/library).
function kindLabel(kind) {
  if (kind === 'model') return I.t('kind.model');
  if (!kind || kind === 'file') return I.t('kind.file');
  return h('bdi', { dir: 'ltr', text: kind.toUpperCase() });
}

async function installModel(btn) {
  const path = btn.dataset.install;
  btn.disabled = true;
  try {
    const r = await api('POST', '/api/library/install', { path });
    toast('ok', I.t('toast.installed'), `${path} → ${r.models_dir}`);
  } catch (err) {
    reportError(err, I.t('toast.notInstalled'));
  } finally {
    btn.disabled = false;
  }
}

async function onLibraryClick(e) {
  const install = e.target.closest('button[data-install]');
  if (install) {
    installModel(install);
    return;
  }
  const btn = e.target.closest('button[data-delete]');
  if (!btn) return;
  const path = btn.dataset.delete;
  if (!await confirmDialog(I.t('confirm.deleteFileTitle'), I.t('confirm.deleteFile', { name: path }), I.t('confirm.delete'))) return;
  try {
    await api('DELETE', fileURL(path));
    toast('ok', I.t('toast.fileDeleted'), path);
  } catch (err) {
    reportError(err, I.t('toast.fileNotDeleted'));
  }
  loadLibrary();
}

// ---------- model mirror ----------

let mirror = { running: false };
let mirrorTimer = 0;
const cacheChoices = [0, 10 * 2 ** 30, 50 * 2 ** 30, 100 * 2 ** 30, 250 * 2 ** 30, 500 * 2 ** 30, 2 ** 40];

function showCacheChoices() {
  const sel = $('mirror-cache-max');
  const cur = sel.value;
  sel.replaceChildren(...cacheChoices.map((v) => h('option', { value: String(v), text: v ? I.bytes(v) : I.t('mirror.cacheNone') })));
  sel.value = cur || '0';
}

function showMirror(m) {
  mirror = m || { running: false };
  const on = !!mirror.running;
  $('mirror-info').hidden = !on;
  $('mirror-state').replaceChildren(...I.tn(on ? 'mirror.on' : 'mirror.off'));
  const toggle = $('mirror-toggle');
  toggle.setAttribute('aria-pressed', String(on));
  toggle.replaceChildren(icon(on ? 'pause' : 'play'), h('span', { text: I.t(on ? 'mirror.stop' : 'mirror.start') }));
  const upstream = typeof mirror.upstream === 'string' ? mirror.upstream : '';
  if (on) {
    $('mirror-upstream').checked = !!upstream;
    if (upstream) $('mirror-upstream-url').value = upstream;
    if (typeof mirror.cache_max === 'number') $('mirror-cache-max').value = cacheChoices.includes(mirror.cache_max) ? String(mirror.cache_max) : '0';
  }
  // The options apply when the mirror starts: fixed while it runs.
  for (const id of ['mirror-upstream', 'mirror-upstream-url', 'mirror-cache-max']) $(id).disabled = on;
  $('mirror-upstream-url').hidden = !$('mirror-upstream').checked;
  $('mirror-cache-max').closest('label').hidden = !$('mirror-upstream').checked;
  if (on) {
    setText($('mirror-address'), mirror.address || '');
    setText($('mirror-command'), mirror.pull_command || mirror.pull_example || '');
    const st = mirror.stats || null;
    const dl = $('mirror-stats');
    dl.hidden = !st;
    if (st) {
      const item = (key, value) => h('div', { 'data-stat': key.slice('mirror.stat'.length).toLowerCase() }, h('dt', { text: I.t(key) }), h('dd', { text: value }));
      dl.replaceChildren(
        item('mirror.statModels', I.num(st.cached_models || 0)),
        item('mirror.statServed', I.bytes(st.bytes_served || 0)),
        upstream ? item('mirror.statUpstream', I.bytes(st.bytes_upstream || 0)) : '',
        upstream ? item('mirror.statSaved', I.bytes(st.bytes_saved || 0)) : '',
        item('mirror.statClients', I.num(st.clients || 0)));
    }
  }
}

async function loadMirror() {
  clearTimeout(mirrorTimer);
  try {
    showMirror(await api('GET', '/api/mirror'));
  } catch (e) {
    reportError(e, I.t('toast.mirrorUnread'));
  }
  // The statistics move while it serves: follow them while they are shown.
  if (mirror.running && currentTab === 'library' && document.visibilityState === 'visible') {
    mirrorTimer = setTimeout(loadMirror, 2000);
  }
}

async function toggleMirror() {
  const btn = $('mirror-toggle');
  btn.disabled = true;
  try {
    const body = {};
    if (!mirror.running && $('mirror-upstream').checked) {
      body.upstream = $('mirror-upstream-url').value.trim();
      const max = $('mirror-cache-max').value;
      if (max && max !== '0') body.cache_max = max;
    }
    const m = await api('POST', mirror.running ? '/api/mirror/stop' : '/api/mirror/start', body);
    showMirror(m);
    toast(m.running ? 'ok' : 'info', I.t(m.running ? 'toast.mirrorOn' : 'toast.mirrorOff'), m.running ? m.address : '');
    if (m.running) loadMirror();
  } catch (e) {
    reportError(e, I.t('toast.mirrorUnchanged'));
  } finally {
    btn.disabled = false;
  }
}

async function copyMirrorCommand() {
  const text = $('mirror-command').textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast('ok', I.t('toast.copied'));
  } catch {
    // No clipboard (plain http on another host): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($('mirror-command'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    toast('info', I.t('toast.copyByHand'));
  }
}

// ---------- history ----------

const hist = { offset: 0, limit: 20, total: 0, status: '', q: '' };

async function loadHistory() {
  const params = new URLSearchParams({ limit: String(hist.limit), offset: String(hist.offset) });
  if (hist.status) params.set('status', hist.status);
  if (hist.q) params.set('q', hist.q);
  let data;
  try {
    data = await api('GET', `/api/history?${params}`);
  } catch (e) {
    reportError(e, I.t('toast.historyUnread'));
    return;
  }
  const records = (data && data.records) || [];
  hist.total = (data && data.total) || 0;
  if (hist.offset > 0 && hist.offset >= hist.total) {
    hist.offset = Math.max(0, Math.floor((hist.total - 1) / hist.limit) * hist.limit);
    if (hist.total > 0) { loadHistory(); return; }
  }
  $('history-body').replaceChildren(...records.map((r) => {
    const name = r.file_name || nameFromSource(r.source);
    const ic = fileIcon(r.kind, name);
    const del = I.t('history.deleteOn', { name });
    return h('tr', { 'data-id': r.id },
      h('td', { class: 'name-cell' },
        h('div', { class: 'job-title' },
          h('span', { class: `job-kind ${ic === 'model' ? 'model' : `ft-${ic}`}` }, icon(ic)),
          h('div', { class: 'job-name-wrap' },
            bidi(name, 'job-name'),
            r.source && r.source !== name ? bidi(readableURL(r.source), 'job-source') : null,
            r.status === 'failed' && (r.error || r.error_code) ? errorBlock(failureSentence(r.error_code), r.error) : null))),
      h('td', {}, h('span', { class: `badge ${r.status}`, text: I.t(`hstatus.${r.status}`) })),
      h('td', { class: 'num', 'data-label': I.t('col.size'), text: I.bytes(r.size) }),
      h('td', { class: 'num', 'data-label': I.t('col.speed'), text: r.status === 'completed' ? I.speed(r.average_speed) : '—' }),
      h('td', { class: 'num', 'data-label': I.t('col.duration'), text: I.duration(r.duration_seconds) }),
      h('td', { class: 'num', 'data-label': I.t('col.finished'), text: I.date(r.finished_at) }),
      h('td', { class: 'actions' }, h('button', { type: 'button', class: 'icon-btn danger', 'data-delete': r.id, 'aria-label': del, title: del }, icon('trash'))));
  }));
  const pages = Math.max(1, Math.ceil(hist.total / hist.limit));
  const page = Math.floor(hist.offset / hist.limit) + 1;
  $('history-table').hidden = records.length === 0;
  $('empty-history').hidden = records.length > 0;
  $('empty-history').firstElementChild.textContent = I.t(hist.q || hist.status ? 'empty.historySearch' : 'empty.history');
  $('history-page').textContent = I.t('history.page', { page: I.num(page), pages: I.num(pages), n: hist.total, total: I.num(hist.total) });
  $('history-prev').disabled = hist.offset === 0;
  $('history-next').disabled = hist.offset + hist.limit >= hist.total;
  $('history-clear').disabled = hist.total === 0 && !hist.q && !hist.status;
}

async function onHistoryClick(e) {
  const btn = e.target.closest('button[data-delete]');
  if (!btn) return;
  try {
    await api('DELETE', `/api/history/${encodeURIComponent(btn.dataset.delete)}`);
  } catch (err) {
    reportError(err, I.t('toast.historyNotDeleted'));
  }
  loadHistory();
}

async function clearHistory() {
  if (!await confirmDialog(I.t('confirm.clearHistoryTitle'), I.t('confirm.clearHistory'), I.t('confirm.delete'))) return;
  try {
    await api('DELETE', '/api/history');
    toast('ok', I.t('toast.historyCleared'));
  } catch (e) {
    reportError(e, I.t('toast.historyNotCleared'));
  }
  hist.offset = 0;
  loadHistory();
}

// ---------- statistics ----------

let lastDaily = null;

async function loadStats() {
  let s;
  try {
    s = await api('GET', '/api/statistics');
  } catch (e) {
    reportError(e, I.t('toast.statsUnread'));
    return;
  }
  s = s || {};
  const card = (label, value, cls) => h('div', { class: `stat-card ${cls || ''}` },
    h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }));
  $('stat-cards').replaceChildren(
    card(I.t('stats.total'), I.num(s.total_files || 0)),
    card(I.t('stats.bytes'), I.bytes(s.total_bytes || 0)),
    card(I.t('stats.completed'), I.num(s.completed || 0), 'ok'),
    card(I.t('stats.failed'), I.num(s.failed || 0), 'err'),
    card(I.t('stats.canceled'), I.num(s.canceled || 0)),
    card(I.t('stats.avgSpeed'), I.speed(s.average_speed || 0)));
  const rec = $('stats-recovered');
  rec.hidden = !s.recovered_from;
  if (s.recovered_from) rec.replaceChildren(...I.tn('stats.recovered', { path: h('bdi', { dir: 'ltr', text: s.recovered_from }) }));
  lastDaily = s.daily || [];
  drawDaily($('daily-chart'), lastDaily);
  drawBars($('stat-domains'), (s.domains || []).map((d) => ({ label: d.domain, count: d.count, bytes: d.bytes })));
  drawBars($('stat-types'), (s.file_types || []).map((d) => ({ label: d.type === 'model' ? I.t('kind.model') : (d.type || I.t('kind.noext')), count: d.count, bytes: d.bytes })));
}

function drawBars(ol, items) {
  if (!items.length) {
    ol.replaceChildren(h('li', {}, h('span', { class: 'empty-line', text: I.t('stats.noData') })));
    return;
  }
  const max = Math.max(1, ...items.map((i) => i.bytes || 0));
  ol.replaceChildren(...items.slice(0, 8).map((i) => {
    const fill = h('div', { class: 'progress-fill' });
    setFill(fill, Math.max(0.02, (i.bytes || 0) / max));
    return h('li', {},
      bidi(i.label, 'bar-label'),
      h('span', { class: 'bar-value', text: I.t('stats.barValue', { size: I.bytes(i.bytes || 0), n: i.count || 0, count: I.num(i.count || 0) }) }),
      h('div', { class: 'progress', 'aria-hidden': 'true' }, fill));
  }));
}

// drawDaily draws bytes per day as SVG bars. Time runs in the reading
// direction: the oldest day at the start (right in RTL), today at the end.
function drawDaily(box, daily) {
  // Drawn at the box's own width (1 unit = 1 px) so text keeps its size.
  const W = Math.max(280, Math.floor(box.clientWidth || 700));
  const H = 200;
  const top = 10;
  const bottom = 26;
  const axis = 86; // room for the y labels at the start side
  const plotW = W - axis - 4;
  const plotH = H - top - bottom;
  const rtl = I.lang.dir === 'rtl';
  // x0 is where the plot begins: after the axis labels in LTR, at 0 in RTL.
  const x0 = rtl ? 0 : axis + 4;
  const n = Math.max(daily.length, 1);
  const max = Math.max(0, ...daily.map((d) => d.bytes || 0));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H), role: 'img', direction: I.lang.dir });
  const peak = daily.reduce((a, d) => ((d.bytes || 0) > (a.bytes || 0) ? d : a), {});
  const total = daily.reduce((a, d) => a + (d.bytes || 0), 0);
  root.setAttribute('aria-label', max > 0
    ? I.t('stats.chartLabel', { days: I.num(daily.length), total: I.bytes(total), peak: I.bytes(peak.bytes), day: I.longDay(new Date(`${peak.date}T00:00:00Z`)) })
    : I.t('stats.chartEmpty', { days: I.num(daily.length) }));
  const scale = max > 0 ? max : 1;
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH - f * plotH;
    root.append(svg('line', { class: 'grid', x1: String(x0), x2: String(x0 + plotW), y1: String(y), y2: String(y) }));
    // 'start' is the right edge in RTL text and the left edge in LTR.
    const t = svg('text', { x: String(rtl ? W - 2 : 2), y: String(y + 4), 'text-anchor': 'start' });
    t.textContent = max > 0 ? I.bytes(f * max) : (f === 0 ? I.num(0) : '');
    root.append(t);
  }
  const slot = plotW / n;
  const bw = Math.max(2, slot * 0.66);
  daily.forEach((d, i) => {
    const bytes = d.bytes || 0;
    const bh = bytes > 0 ? Math.max(2, (bytes / scale) * plotH) : 2;
    // i = 0 is the oldest day: at the start of the reading direction.
    const x = rtl ? plotW - (i + 1) * slot + (slot - bw) / 2 : x0 + i * slot + (slot - bw) / 2;
    const rect = svg('rect', {
      class: bytes > 0 ? 'bar' : 'bar zero', x: x.toFixed(1), y: (top + plotH - bh).toFixed(1),
      width: bw.toFixed(1), height: bh.toFixed(1), rx: '2', 'data-date': d.date, 'data-bytes': String(bytes),
    });
    const day = new Date(`${d.date}T00:00:00Z`);
    const title = svg('title', {});
    title.textContent = I.t('stats.dayTitle', { day: I.longDay(day), size: I.bytes(bytes), n: d.count || 0, count: I.num(d.count || 0) });
    rect.append(title);
    root.append(rect);
    if ((daily.length - 1 - i) % (W < 500 ? 10 : 5) === 0) {
      const t = svg('text', { x: (x + bw / 2).toFixed(1), y: String(H - 8), 'text-anchor': 'middle' });
      t.textContent = I.day(day);
      root.append(t);
    }
  });
  box.replaceChildren(root);
}

// ---------- language ----------

function translateStatic() {
  for (const el of document.querySelectorAll('[data-t]')) el.replaceChildren(...I.tn(el.dataset.t));
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', I.t(el.dataset.tLabel));
  for (const el of document.querySelectorAll('[data-t-title]')) el.title = I.t(el.dataset.tTitle);
  for (const el of document.querySelectorAll('[data-t-placeholder]')) el.placeholder = I.t(el.dataset.tPlaceholder);
  $('footer-font').replaceChildren(...I.tn('footer.font', { ofl: h('a', { href: '/fonts/OFL.txt', text: 'OFL' }) }));
}

// The switch names the other language in that language: the one word of
// another language the page shows. More than two languages: a list.
function renderLanguageSwitch() {
  const box = $('lang-box');
  const others = languages.filter((l) => l.code !== I.lang.code);
  if (others.length === 1) {
    const o = others[0];
    box.replaceChildren(h('button', {
      type: 'button', class: 'pill-btn lang-switch', id: 'lang-switch', lang: o.code, dir: o.dir, 'data-lang': o.code,
      title: o.name, onclick: () => setLanguage(o.code, true),
    }, icon('globe'), h('span', { text: o.name })));
    return;
  }
  const sel = h('select', { id: 'lang-switch', class: 'lang-select', 'aria-label': I.t('lang.label'), onchange: (e) => setLanguage(e.target.value, true) },
    ...languages.map((l) => h('option', { value: l.code, lang: l.code, text: l.name })));
  sel.value = I.lang.code;
  box.replaceChildren(h('label', { class: 'limit' }, icon('globe'), sel));
}

function setLanguage(code, remember) {
  const lang = findLanguage(code) || findLanguage(fallbackLanguage);
  I = makeI18n(lang);
  if (remember) rememberLanguage(lang.code);
  const url = new URL(location.href);
  if (url.searchParams.has('lang') && url.searchParams.get('lang') !== lang.code) {
    url.searchParams.set('lang', lang.code);
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  document.documentElement.lang = lang.code;
  document.documentElement.dir = lang.dir;
  translateStatic();
  renderLanguageSwitch();
  // Numbers typed into fields follow the digits of the language.
  for (const id of ['add-retries', 'concurrency']) {
    const v = parseDigits($(id).value);
    if (Number.isFinite(v)) $(id).value = I.num(v);
  }
  showLimit(globalLimit);
  showCacheChoices();
  foldAdd($('add-card').classList.contains('folded'));
  showSchedule();
  showMirror(mirror);
  for (const vl of Object.values(vlists)) vl.forget(true);
  renderAll();
  if (preview.name) { const n = preview.name; preview.name = ''; showPreview(n); }
  refreshTab();
}

function chooseLanguage() {
  const asked = startURL.searchParams.get('lang');
  if (asked && findLanguage(asked)) {
    rememberLanguage(asked);
    return asked;
  }
  const stored = storedLanguage();
  return findLanguage(stored) ? stored : fallbackLanguage;
}

// ---------- wiring ----------

function init() {
  measureRowBase();
  makeLists();
  $('add-retries').value = '3';
  setLanguage(chooseLanguage(), false);
  foldAdd(isPhone.matches);
  document.body.classList.remove('loading');

  for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => showTab(t));
  document.querySelector('[role="tablist"]').addEventListener('keydown', onTabKey);

  $('add-form').addEventListener('submit', onAdd);
  $('add-url').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) $('add-form').requestSubmit();
  });
  $('add-url').addEventListener('input', onAddInput);
  $('add-toggle').addEventListener('click', () => {
    const folded = !$('add-card').classList.contains('folded');
    foldAdd(folded);
    if (!folded) $('add-url').focus();
  });
  isPhone.addEventListener('change', () => foldAdd(isPhone.matches));

  for (const tab of Object.keys(selected)) {
    $(`list-${tab}`).addEventListener('click', onListClick);
    // A <details> opened or closed in a row changes its height: measure it
    // again ('toggle' does not bubble, so it is caught on the way down).
    $(`list-${tab}`).addEventListener('toggle', (e) => {
      const row = e.target.closest && e.target.closest('li.job');
      if (row) { row._item = null; scheduleRender(); }
    }, true);
    $(`list-${tab}`).addEventListener('change', onListChange);
    $(`list-${tab}`).addEventListener('focusin', fillLimitChoices);
    $(`list-${tab}`).addEventListener('mousedown', fillLimitChoices);
    $(`select-all-${tab}`).addEventListener('change', (e) => {
      selected[tab] = new Set(e.target.checked ? lists[tab] : []);
      syncSelection(tab);
    });
    $(`bulk-${tab}`).addEventListener('click', (e) => {
      const btn = e.target.closest('[data-bulk]');
      if (btn) runBulk(tab, btn.dataset.bulk);
    });
  }
  for (const which of ['pause-all', 'resume-all', 'cancel-all', 'clear-finished']) {
    $(which).addEventListener('click', () => globalAction(which));
  }

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

  $('library-body').addEventListener('click', onLibraryClick);
  $('library-refresh').addEventListener('click', () => { loadLibrary(); loadMirror(); });
  $('mirror-toggle').addEventListener('click', toggleMirror);
  $('mirror-copy').addEventListener('click', copyMirrorCommand);
  $('mirror-upstream').addEventListener('change', () => showMirror(mirror));

  $('history-body').addEventListener('click', onHistoryClick);
  $('history-clear').addEventListener('click', clearHistory);
  $('history-prev').addEventListener('click', () => { hist.offset = Math.max(0, hist.offset - hist.limit); loadHistory(); });
  $('history-next').addEventListener('click', () => { hist.offset += hist.limit; loadHistory(); });
  $('history-status').addEventListener('change', (e) => { hist.status = e.target.value; hist.offset = 0; loadHistory(); });
  let searchTimer = 0;
  $('history-search').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { hist.q = e.target.value.trim(); hist.offset = 0; loadHistory(); }, 300);
  });

  // The rows in view change as the page scrolls and when the width changes.
  window.addEventListener('scroll', () => { if (vlists[currentTab]) scheduleRender(); }, { passive: true });
  let lastWidth = window.innerWidth;
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    if (window.innerWidth !== lastWidth) {
      lastWidth = window.innerWidth;
      measureRowBase();
      for (const vl of Object.values(vlists)) vl.forget(false);
    }
    scheduleRender();
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (currentTab === 'stats' && lastDaily) drawDaily($('daily-chart'), lastDaily); }, 150);
  });

  // Nothing is followed while the page is hidden: the stream closes and
  // opens again from the newest revision when the page shows.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      connect();
      refreshTab();
    } else {
      disconnect();
      clearTimeout(mirrorTimer);
    }
  });
  // "The queue will next run in …" counts down.
  setInterval(() => { if (document.visibilityState === 'visible' && store.schedule && store.schedule.open === false) showSchedule(); }, 30_000);

  loadSettings();
  showTab(location.hash.slice(1) || 'active');
  renderAll();
  connect();
}

init();
