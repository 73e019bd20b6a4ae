// The lists of the Active, Queue and Finished tabs: rendered at most once
// a frame from the store, only the rows near the view in the DOM (vlist.js,
// a row is rows.js's); the header's counts and overall progress; the
// selection, bulk actions and what a row's buttons do.
import { $, h, setText, setAttr, setFill } from './dom.js';
import { VirtualList } from './vlist.js';
import { I } from './state.js';
import { api } from './api.js';
import { toast, confirmDialog, reportError } from './toast.js';
import { finished, ended, running, tabsOf, store, jobName, lists, orderIndex, dirty, moves, counts, sums, upsert, refreshNow } from './store.js';
import { fillLimitChoices, estimateRow, buildRow, updateRow } from './rows.js';
import { currentTab } from './tabs.js';
import { concurrencyPending } from './settings.js';

// ---------- the virtual lists ----------

export const vlists = {};
export const selected = { active: new Set(), queue: new Set(), finished: new Set() };

export function makeLists() {
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

// ---------- rendering the lists ----------

let renderQueued = false;
let firstRenderDone = false;

export function scheduleRender() {
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
  dirty.lists = false;
  moves.length = 0;
  queueMoved();
}

// queueMoved: the queued rows of Active say their place in the queue.
function queueMoved() {
  for (const row of vlists.active.rendered()) if (row.dataset.state === 'queued') row._item = null;
}

// placeIn is where id is, or would go, in a list sorted by queue order.
export function placeIn(list, id) {
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
    if (!j || !orderIndex.has(id)) { dirty.lists = true; break; }
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
  if (dirty.lists) rebuildLists();
  else if (queueChanged) queueMoved();
}

export function renderAll() {
  if (dirty.lists) rebuildLists();
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

export function updateBulk(tab) {
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

// wireLists listens to the rows, the selection and bulk bars, and the
// header's buttons.
export function wireLists() {
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
}
