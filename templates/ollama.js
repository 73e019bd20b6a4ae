// The Ollama tab: this machine's Ollama models (GET /api/models/local), as
// `ollama list` shows them, and the disk they take; each one exported to a
// zip through the queue (several chosen: one zip), or checked against its
// registry for a newer version (a HEAD of its manifest on the server's
// side). A models folder that is not there or cannot be read says so.
import { $, h, icon, bidi } from './dom.js';
import { I } from './state.js';
import { api, errorBlock } from './api.js';
import { toast, reportError } from './toast.js';
import { takeAdded, refreshNow } from './store.js';

// What the page knows between two loads of the list: the last answer of
// each model's update check, and the models chosen for one zip (by ref).
const checks = new Map();
const chosen = new Set();
let shown = []; // the models in the table, in its order

export async function loadOllama() {
  let data;
  try {
    data = await api('GET', '/api/models/local');
  } catch (e) {
    reportError(e, I.t('ollama.unread'));
    return;
  }
  showFolder(data || {});
}

function showFolder(data) {
  const ok = data.state === 'ok';
  shown = ok && Array.isArray(data.models) ? data.models : [];
  for (const ref of [...chosen]) if (!shown.some((m) => m.ref === ref)) chosen.delete(ref);
  $('ollama-dir').textContent = data.models_dir || '—';
  $('ollama-summary').textContent = ok && shown.length
    ? I.t('ollama.summary', { n: shown.length, count: I.num(shown.length), size: I.bytes(data.total_size || 0) }) : '';
  const notice = $('ollama-notice');
  notice.hidden = ok;
  if (!ok) {
    const sentence = I.sentence(data.state === 'missing' ? 'ollama.missing' : 'ollama.unreadable');
    notice.replaceChildren(errorBlock(sentence, data.error || ''));
  }
  $('ollama-table').hidden = shown.length === 0;
  $('empty-ollama').hidden = !ok || shown.length > 0;
  $('ollama-body').replaceChildren(...shown.map(modelRow));
  showChosen();
}

function modelRow(m) {
  const id = String(m.id || '');
  const check = h('input', { type: 'checkbox', class: 'row-check', 'data-choose': m.ref, 'aria-label': I.t('row.select', { name: m.name }) });
  check.checked = chosen.has(m.ref);
  const dash = (v) => (v ? h('bdi', { dir: 'ltr', text: v }) : '—');
  return h('tr', { 'data-ref': m.ref },
    h('td', { class: 'sel-cell' }, check),
    h('td', { class: 'name-cell' },
      h('div', { class: 'job-title' },
        h('span', { class: 'job-kind model' }, icon('model')),
        h('div', { class: 'job-name-wrap' },
          bidi(m.name, 'job-name'),
          m.missing_blobs > 0 ? h('span', { class: 'job-source warn', text: I.t('ollama.incomplete', { n: m.missing_blobs, count: I.num(m.missing_blobs) }) }) : null)),
      h('div', { class: 'ollama-actions' },
        h('button', { type: 'button', class: 'btn sm', 'data-export': m.ref, title: I.t('ollama.exportTitle', { name: m.name }), disabled: m.missing_blobs > 0 },
          icon('archive'), h('span', {}, ...I.tn('ollama.export'))),
        h('button', { type: 'button', class: 'btn sm', 'data-check': m.ref, title: I.t('ollama.checkTitle', { name: m.name }) },
          icon('globe'), h('span', {}, ...I.tn('ollama.check')))),
      h('div', { class: 'ollama-check', 'aria-live': 'polite' }, ...checkLine(m))),
    h('td', { class: 'num', 'data-label': I.t('models.id') }, h('bdi', { dir: 'ltr', class: 'mono', text: id })),
    h('td', { class: 'num', 'data-label': I.t('models.size'), text: I.bytes(m.size) }),
    h('td', { class: 'num', 'data-label': I.t('ollama.family') }, dash(m.family)),
    h('td', { class: 'num', 'data-label': I.t('models.params') }, dash(m.parameters)),
    h('td', { class: 'num', 'data-label': I.t('models.quant') }, dash(m.quantization)),
    h('td', { class: 'num', 'data-label': I.t('models.modified'), text: I.date(m.modified) }));
}

// checkLine is what the last update check of m said.
function checkLine(m) {
  const c = checks.get(m.ref);
  if (!c) return [];
  if (c === 'pending') return [h('span', { class: 'muted small' }, ...I.tn('ollama.checking'))];
  const line = (cls, key, ...more) => h('p', { class: `check-line ${cls}` }, ...I.tn(key), ...more);
  switch (c.status) {
    case 'up_to_date':
      return [line('ok', 'ollama.upToDate')];
    case 'update_available':
      return [line('warn', 'ollama.updateAvailable', ' ',
        h('button', { type: 'button', class: 'btn sm primary', 'data-pull': m.ref, title: I.t('ollama.pullTitle', { name: m.name }) },
          icon('download'), h('span', {}, ...I.tn('ollama.pull'))))];
    case 'not_found':
      return [line('muted', 'ollama.notInRegistry')];
    case 'unreachable':
      return [errorBlock(I.sentence('ollama.unreachable'), c.error)];
    default:
      return [errorBlock(I.sentence('ollama.checkFailed'), c.error)];
  }
}

function redrawRow(ref) {
  const row = [...$('ollama-body').rows].find((r) => r.dataset.ref === ref);
  const m = shown.find((x) => x.ref === ref);
  if (row && m) row.replaceWith(modelRow(m));
}

async function checkModel(ref) {
  checks.set(ref, 'pending');
  redrawRow(ref);
  try {
    checks.set(ref, await api('POST', '/api/models/local/check', { name: ref }));
  } catch (e) {
    checks.delete(ref);
    reportError(e, I.t('ollama.checkFailed'));
  }
  redrawRow(ref);
}

async function exportModels(refs, btn) {
  if (btn) btn.disabled = true;
  try {
    const body = new URLSearchParams();
    for (const r of refs) body.append('name', r);
    const r = await api('POST', '/api/models/export', body);
    const added = (r && r.downloads) || [];
    takeAdded(added);
    toast('info', I.t('toast.exportAdded'), added.length ? added[0].path : '');
    for (const ref of refs) chosen.delete(ref);
    loadOllama();
  } catch (e) {
    reportError(e, I.t('toast.exportFailed'));
  } finally {
    if (btn) btn.disabled = false;
    refreshNow();
  }
}

async function pullModel(ref, btn) {
  btn.disabled = true;
  try {
    const r = await api('POST', '/api/download/add', { url: ref });
    takeAdded((r && r.downloads) || []);
    toast('info', I.t('toast.added'), ref);
  } catch (e) {
    reportError(e, I.t('toast.pullNotAdded'));
  } finally {
    btn.disabled = false;
    refreshNow();
  }
}

function showChosen() {
  const btn = $('ollama-export-chosen');
  btn.hidden = chosen.size === 0;
  btn.replaceChildren(icon('archive'), h('span', {}, ...I.tn('ollama.exportChosen', { n: chosen.size, count: I.num(chosen.size) })));
}

function onOllamaClick(e) {
  const t = e.target;
  const choose = t.closest('input[data-choose]');
  if (choose) {
    if (choose.checked) chosen.add(choose.dataset.choose); else chosen.delete(choose.dataset.choose);
    showChosen();
    return;
  }
  const exp = t.closest('button[data-export]');
  if (exp) { exportModels([exp.dataset.export], exp); return; }
  const chk = t.closest('button[data-check]');
  if (chk) { checkModel(chk.dataset.check); return; }
  const pull = t.closest('button[data-pull]');
  if (pull) pullModel(pull.dataset.pull, pull);
}

export function wireOllama() {
  $('ollama-body').addEventListener('click', onOllamaClick);
  $('ollama-refresh').addEventListener('click', loadOllama);
  $('ollama-export-chosen').addEventListener('click', (e) => exportModels([...chosen], e.currentTarget));
}
