// The add box: links and model names added to the queue, bad input
// explained, folded away on a phone, and what a typed model name is before
// it is added (the model preview).
import { $, h, icon, nameFromSource, fileIcon } from './dom.js';
import { latinDigits, parseDigits } from './i18n.js';
import { I, isPhone } from './state.js';
import { ApiError, api, errorBlock, apiSentence } from './api.js';
import { toast } from './toast.js';
import { store, jobName, adding, ended, takeAdded, refreshNow, toastAdded, endToast } from './store.js';
import { scheduleRender } from './lists.js';
import { currentTab, showTab } from './tabs.js';

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
  let added = [];
  adding.n++;
  try {
    const r = await api('POST', '/api/download/add', body);
    added = (r && r.downloads) || [];
    takeAdded(added);
    $('add-url').value = '';
    $('add-sha').value = '';
    showAddLines();
    hidePreview();
    if (!['active', 'queue'].includes(currentTab)) showTab('active');
    if (isPhone.matches) foldAdd(true);
    scheduleRender();
  } catch (err) {
    fail(errorBlock(err instanceof ApiError && err.status === 0 ? I.t('api.offline') : addSentence(err), err.message), 'add-url');
  } finally {
    btn.disabled = false;
    adding.n--;
    toastAdd(added);
    refreshNow();
  }
}

// toastAdd says what one add did, in one toast: added, or, when the
// download already ended (a file this folder has, unchanged upstream), how.
// New downloads the stream brought meanwhile that are not this add's were
// added elsewhere; they are said first, so that this add's toast stays.
function toastAdd(added) {
  const ids = new Set(added.map((j) => j.id));
  if (adding.n === 0) {
    toastAdded(adding.seen.filter((j) => !ids.has(j.id)));
    adding.seen = [];
  }
  if (added.length > 1) {
    toast('info', I.t('toast.addedN', { n: added.length, count: I.num(added.length) }));
  } else if (added.length === 1) {
    const j = store.jobs.get(added[0].id) || added[0];
    if (ended(j.state) && j.state !== 'canceled') endToast(j);
    else toast('info', I.t('toast.added'), jobName(j), j.id);
  }
}

function addSentence(err) {
  if (err instanceof ApiError && I.hasError(err.code)) return I.errorSentence(err.code);
  if (err instanceof ApiError && err.status === 400) return I.t('add.errServer');
  return apiSentence(err);
}

// On a phone the add form folds away so the list is on the first screen.
export function foldAdd(folded) {
  $('add-card').classList.toggle('folded', folded);
  const t = $('add-toggle');
  t.setAttribute('aria-expanded', String(!folded));
  t.replaceChildren(icon(folded ? 'plus' : 'close'), h('span', { text: I.t(folded ? 'add.open' : 'add.close') }));
}

// ---------- what is typed: lines, their count, the preview ----------

// The model preview: what a typed model name is, before it is added; for
// several lines, a short list of what each line is.
export const preview = { timer: 0, ctrl: null, key: '' };

// looksLikeModel: [host[:port]/][namespace/]model[:tag][@sha256:…], as the
// server reads a model name (registry.ParseName), so that a name on
// another registry (127.0.0.1:5000/library/tiny:1) is previewed too.
function looksLikeModel(s) {
  return s.length <= 300 && !/^[a-z][a-z0-9+.-]*:\/\//i.test(s)
    && /^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::\d{1,5})?\/)?[A-Za-z0-9][\w.-]*(?:\/[A-Za-z0-9][\w.-]*)*(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$/.test(s);
}

// lineKind is what a line of the add box asks for: a file, a model, or
// neither (the server will say why).
function lineKind(s) {
  if (/^https?:\/\/\S+$/i.test(s)) return 'file';
  return looksLikeModel(s) ? 'model' : 'bad';
}

const addLines = () => $('add-url').value.split('\n').map((s) => s.trim()).filter(Boolean);

// showAddLines fits the box to what is pasted in it (two to ten lines; it
// scrolls beyond) and counts the downloads it holds.
function showAddLines() {
  const box = $('add-url');
  const rows = Math.min(10, Math.max(2, box.value.split('\n').length));
  if (box.rows !== rows) box.rows = rows;
  const lines = addLines();
  const count = $('add-count');
  count.hidden = lines.length < 2;
  if (count.hidden) return;
  const n = { file: 0, model: 0, bad: 0 };
  for (const l of lines) n[lineKind(l)]++;
  const parts = [];
  if (n.file) parts.push(I.t('add.countFiles', { n: n.file, count: I.num(n.file) }));
  if (n.model) parts.push(I.t('add.countModels', { n: n.model, count: I.num(n.model) }));
  let text = I.t('add.count', { n: lines.length, count: I.num(lines.length) });
  if (n.bad) parts.push(I.t('add.countBad', { n: n.bad, count: I.num(n.bad) }));
  if (parts.length) text = I.t('add.countWhat', { lines: text, what: parts.join(I.t('add.countAnd')) });
  count.textContent = text;
  count.classList.toggle('warn', n.bad > 0);
}

function onAddInput() {
  showAddLines();
  clearTimeout(preview.timer);
  const lines = addLines();
  const key = lines.join('\n');
  if (!lines.length || (lines.length === 1 && lineKind(lines[0]) !== 'model')) { hidePreview(); return; }
  if (key === preview.key) return;
  preview.timer = setTimeout(() => (lines.length === 1 ? showPreview(lines[0]) : showLines(lines)), 400);
}

// redrawAdd draws the count and the preview again (a new language).
export function redrawAdd() {
  showAddLines();
  const lines = addLines();
  preview.key = '';
  if (lines.length === 1 && lineKind(lines[0]) === 'model') showPreview(lines[0]);
  else if (lines.length > 1) showLines(lines);
}

function hidePreview() {
  clearTimeout(preview.timer);
  if (preview.ctrl) preview.ctrl.abort();
  preview.ctrl = null;
  preview.key = '';
  $('model-preview').hidden = true;
  $('model-preview').replaceChildren();
}

// showModel asks the server what a model is (GET /api/model/show): the
// model, or an error to say (null for nothing worth saying: not a model
// name, or a server without the preview).
async function showModel(name, signal) {
  try {
    return { m: await api('GET', `/api/model/show?name=${encodeURIComponent(name)}`, null, signal) };
  } catch (e) {
    if (signal.aborted) throw e;
    if (!(e instanceof ApiError) || e.status === 400 || e.status === 0 || (e.status === 404 && e.code !== 'model_not_found') || e.status === 405) return null;
    return { err: e };
  }
}

const modelErr = (e) => errorBlock(I.hasError(e.code) ? I.errorSentence(e.code) : apiSentence(e), e.message);

function startPreview(key) {
  if (preview.ctrl) preview.ctrl.abort();
  const ctrl = new AbortController();
  preview.ctrl = ctrl;
  preview.key = key;
  return ctrl;
}

export async function showPreview(name) {
  const ctrl = startPreview(name);
  const box = $('model-preview');
  let r;
  try {
    r = await showModel(name, ctrl.signal);
  } catch {
    return; // aborted: a newer preview is coming
  }
  preview.ctrl = null;
  if (!r || !r.m) {
    box.hidden = !r;
    if (r) {
      box.replaceChildren(modelErr(r.err));
      box.className = 'model-preview err';
    }
    return;
  }
  const m = r.m;
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

// At most this many lines in the list, and model names asked about.
const previewLines = 6;
const previewModels = 4;

// showLines lists what several lines are: a file (its name), a model (its
// name, then its size once the server says it), or neither.
async function showLines(lines) {
  const ctrl = startPreview(lines.join('\n'));
  const box = $('model-preview');
  const shown = lines.slice(0, previewLines);
  const rows = shown.map((line) => {
    const kind = lineKind(line);
    const name = kind === 'file' ? nameFromSource(line) : line;
    const ic = kind === 'bad' ? 'file-x' : fileIcon(kind === 'model' ? 'model' : 'file', name);
    const detail = h('span', { class: 'mp-line-detail', text: kind === 'bad' ? I.t('add.lineBad') : '' });
    const li = h('li', { class: `mp-line ${kind}` },
      h('span', { class: `job-kind ${ic === 'model' ? 'model' : `ft-${ic}`}` }, icon(ic)),
      h('bdi', { class: 'mp-line-name', dir: 'auto', title: line, text: name }),
      detail);
    return { li, kind, line, detail };
  });
  const more = lines.length - shown.length;
  box.className = 'model-preview multi';
  box.replaceChildren(h('ul', { class: 'mp-lines' }, ...rows.map((r) => r.li),
    more > 0 ? h('li', { class: 'mp-more', text: I.t('add.more', { n: more, count: I.num(more) }) }) : null));
  box.hidden = false;
  const models = rows.filter((r) => r.kind === 'model').slice(0, previewModels);
  await Promise.all(models.map(async (r) => {
    let res;
    try {
      res = await showModel(r.line, ctrl.signal);
    } catch {
      return;
    }
    if (!res) return;
    if (res.m) r.detail.textContent = I.bytes(res.m.size);
    else r.detail.replaceChildren(modelErr(res.err));
  }));
  if (preview.ctrl === ctrl) preview.ctrl = null;
}

export function wireAdd() {
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
}
