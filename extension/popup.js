// The toolbar popup: whether the manager is reachable and this browser
// paired, and the running and queued downloads with their progress and
// speed, followed through GET /api/downloads?since=<rev> once a second
// while the popup is open.
import { call, requestPairing, settings, status } from './lib/manager.js';
import { localize, number, percent, size, speed, t } from './lib/i18n.js';
import { showState } from './lib/state.js';

const $ = (id) => document.getElementById(id);
const running = new Set(['downloading', 'verifying', 'packaging']);
const maxRows = 30;

const jobs = new Map(); // id → download
let rev = 0;
let order = [];

function render(summary) {
  const active = [...jobs.values()]
    .filter((j) => running.has(j.state) || j.state === 'queued')
    .sort((a, b) => (running.has(b.state) - running.has(a.state)) || (a.position - b.position));
  const list = $('jobs');
  list.replaceChildren();
  for (const j of active.slice(0, maxRows)) {
    const li = document.createElement('li');
    li.className = 'job';
    li.dataset.state = j.state;
    const name = document.createElement('bdi');
    name.className = 'name';
    name.textContent = j.name || j.source;
    name.title = j.source;
    const bar = document.createElement('div');
    bar.className = 'progress';
    bar.setAttribute('role', 'progressbar');
    const fill = document.createElement('div');
    const pct = j.bytes_total > 0 ? Math.min(100, (100 * j.bytes_done) / j.bytes_total) : 0;
    fill.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', String(Math.round(pct)));
    bar.append(fill);
    const figures = document.createElement('div');
    figures.className = 'figures';
    const left = document.createElement('span');
    left.textContent = j.bytes_total > 0 ? `${percent(pct)} · ${size(j.bytes_done)} / ${size(j.bytes_total)}` : size(j.bytes_done);
    const right = document.createElement('span');
    right.textContent = running.has(j.state) ? speed(j.speed || 0) : t(`state_${j.state}`);
    figures.append(left, right);
    li.append(name, bar, figures);
    list.append(li);
  }
  $('empty').hidden = active.length > 0;
  const sum = $('summary');
  sum.hidden = !summary;
  if (summary) {
    const parts = [t('summaryRunning', number(summary.running)), t('summaryQueued', number(summary.queued))];
    if (summary.speed > 0) parts.push(speed(summary.speed));
    if (active.length > maxRows) parts.push(t('summaryMore', number(active.length - maxRows)));
    sum.textContent = parts.join(' · ');
  }
}

async function poll() {
  const r = await call('GET', `/api/downloads?since=${rev}`);
  if (!r.ok || !r.data) return false;
  const d = r.data;
  if (d.full) jobs.clear();
  for (const j of d.downloads || []) jobs.set(j.id, j);
  for (const id of d.removed || []) jobs.delete(id);
  if (d.order) {
    order = d.order;
    order.forEach((id, i) => { const j = jobs.get(id); if (j) j.position = i; });
  }
  rev = d.rev;
  render(d.summary);
  return true;
}

async function refresh() {
  const st = await status();
  showState(st);
  $('pair').hidden = st.state !== 'unpaired';
  $('jobs').hidden = st.state !== 'paired';
  if (st.state !== 'paired') {
    $('summary').hidden = true;
    $('empty').hidden = true;
    return false;
  }
  return poll();
}

async function main() {
  localize();
  $('open').addEventListener('click', async () => {
    const s = await settings();
    chrome.tabs.create({ url: s.server });
    window.close();
  });
  $('options').addEventListener('click', () => { chrome.runtime.openOptionsPage(); window.close(); });
  $('pair').addEventListener('click', async () => {
    const r = await requestPairing();
    if (!r.ok) showState({ state: r.status === 0 ? 'unreachable' : 'unpaired', error: r.error });
  });
  let paired = await refresh();
  // Bounded by the popup's life: it closes when it loses focus.
  for (let i = 0; i < 3600; i++) {
    await new Promise((res) => { setTimeout(res, 1000); });
    paired = paired ? await poll() || await refresh() : await refresh();
  }
}

main();
