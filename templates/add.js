// The add box: links and model names added to the queue, bad input
// explained, folded away on a phone, and what a typed model name is before
// it is added (the model preview).
import { $, h, icon } from './dom.js';
import { latinDigits, parseDigits } from './i18n.js';
import { I, isPhone } from './state.js';
import { ApiError, api, errorBlock, apiSentence } from './api.js';
import { toast } from './toast.js';
import { store, jobName, takeAdded, refreshNow } from './store.js';
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
  try {
    const r = await api('POST', '/api/download/add', body);
    const added = (r && r.downloads) || [];
    takeAdded(added);
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
export function foldAdd(folded) {
  $('add-card').classList.toggle('folded', folded);
  const t = $('add-toggle');
  t.setAttribute('aria-expanded', String(!folded));
  t.replaceChildren(icon(folded ? 'plus' : 'close'), h('span', { text: I.t(folded ? 'add.open' : 'add.close') }));
}

// The model preview: what a typed model name is, before it is added.
export const preview = { timer: 0, ctrl: null, name: '' };

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

export async function showPreview(name) {
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
