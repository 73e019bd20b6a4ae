// A download's row: built once when it comes into view (vlist.js), then
// updated in place: name, state, progress, notes, the failure in words, a
// model's layers, size, speed and time left, its own speed limit and its
// buttons.
import { h, icon, bidi, setText, setAttr, setFill, readableURL, fileIcon } from './dom.js';
import { I, isPhone } from './state.js';
import { errorBlock, failureSentence, fileURL } from './api.js';
import { ended, running, store, jobName, lists } from './store.js';
import { selected, placeIn, updateBulk } from './lists.js';
import { limitChoices } from './settings.js';

const limitOption = (v) => h('option', { value: String(v), text: v ? I.t('limit.rowMax', { speed: I.speed(v) }) : I.t('limit.rowNone') });

// fillLimitChoices gives a row's speed selector every choice, when a person
// reaches for it.
export function fillLimitChoices(e) {
  const sel = e.target;
  if (!(sel instanceof HTMLSelectElement) || !sel.classList.contains('job-limit') || sel.options.length > 1) return;
  const rate = Number(sel.dataset.rate) || 0;
  const values = limitChoices.includes(rate) ? limitChoices : [...limitChoices, rate].sort((a, b) => a - b);
  sel.replaceChildren(...values.map(limitOption));
  sel.value = String(rate);
}

const isNarrow = window.matchMedia('(max-width: 860px)');

// A model pull and an export (models of this machine's Ollama into a zip)
// show a model's name, phases and layers.
const modelish = (j) => j.kind === 'model' || j.kind === 'export';

// rowBase is a row's usual height at this width (asking matchMedia for each
// of 10,000 rows would cost more than the rows in view).
let rowBase = 78;
export function measureRowBase() {
  rowBase = isPhone.matches ? 168 : (isNarrow.matches ? 130 : 78);
}

export function estimateRow(j) {
  let px = rowBase;
  if (!j) return px;
  if (j.error && j.state === 'failed') px += 44;
  if (modelish(j) && Array.isArray(j.layers) && j.layers.length) px += 28;
  if (j.outcome || j.reused_bytes > 0 || j.models_dir) px += 22;
  return px;
}

const openLayers = new Set(); // ids whose layer list is unfolded

export function buildRow(tab, id, j) {
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

export function updateRow(row, j, index, count) {
  const tab = row._tab;
  const name = modelish(j) ? (j.name || j.source) : jobName(j);
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
  let src = j.kind === 'model' ? (j.models_dir ? '' : (j.source !== name ? j.source : '')) : readableURL(j.source);
  if (j.kind === 'export') src = j.path || '';
  const srcEl = q('.job-source');
  if (srcEl.textContent !== src) { srcEl.textContent = src; srcEl.title = src; srcEl.hidden = !src; }

  const iconName = fileIcon(j.kind, j.name || j.path || j.source);
  const kind = q('.job-kind');
  if (kind.dataset.icon !== iconName) {
    kind.dataset.icon = iconName;
    kind.className = `job-kind ${iconName === 'model' ? 'model' : `ft-${iconName}`}`;
    kind.title = I.t({ model: 'kind.model', export: 'kind.export' }[j.kind] || 'kind.file');
    kind.replaceChildren(icon(iconName));
  }

  const badge = q('.badge');
  const phaseKey = `phase.${j.phase}`;
  let label = modelish(j) && running(j.state) && j.phase && I.has(phaseKey) ? I.t(phaseKey) : I.t(`state.${j.state}`);
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
  if (j.models_dir) notes.push(I.tn(j.kind === 'export' ? 'note.exportFrom' : 'note.modelsDir', { dir: h('bdi', { dir: 'ltr', class: 'path', text: j.models_dir }) }));
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
  const layers = modelish(j) && Array.isArray(j.layers) ? j.layers : [];
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
