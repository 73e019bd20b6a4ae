// The History tab: finished downloads a page at a time, searched and
// filtered by status; one record or all of them deleted.
import { $, h, icon, bidi, readableURL, nameFromSource, fileIcon } from './dom.js';
import { I } from './state.js';
import { api, errorBlock, failureSentence } from './api.js';
import { toast, confirmDialog, reportError } from './toast.js';

const hist = { offset: 0, limit: 20, total: 0, status: '', q: '' };

export async function loadHistory() {
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

export function wireHistory() {
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
}
