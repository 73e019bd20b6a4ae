// The Library tab: the files of the output folder and the models among
// them (as `ollama list` shows them); a file downloaded or deleted, a model
// installed into Ollama's folder. The model mirror on the same tab is
// mirror.js's.
import { $, h, icon, bidi, fileIcon } from './dom.js';
import { I } from './state.js';
import { api, fileURL } from './api.js';
import { toast, confirmDialog, reportError } from './toast.js';
import { loadMirror } from './mirror.js';

export async function loadLibrary() {
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

export function wireLibrary() {
  $('library-body').addEventListener('click', onLibraryClick);
  $('library-refresh').addEventListener('click', () => { loadLibrary(); loadMirror(); });
}
