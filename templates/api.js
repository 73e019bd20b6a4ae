// Talking to the server (docs/API.md): the access token, the calls, the
// banner while the server cannot be reached, and what a failure means, as
// a sentence in the page's language.
import { $, h } from './dom.js';
import { I } from './state.js';

// ---------- address bar: token ----------

export const startURL = new URL(location.href);

// A page opened as /?token=… (a server listening beyond loopback) keeps the
// token in memory for its API calls and takes it out of the address bar,
// so that it is not kept in the history (issue 18; the server's cookie
// carries the session from here on, the event stream included).
const token = startURL.searchParams.get('token') || '';
if (token) {
  startURL.searchParams.delete('token');
  history.replaceState(history.state, '', startURL.pathname + startURL.search + startURL.hash);
}

// ---------- API ----------

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code || '';
  }
}

export async function api(method, path, body, signal) {
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

// ---------- the offline banner ----------

export let online = true;
export function setOnline(ok) {
  if (ok === online) return;
  online = ok;
  $('offline').hidden = ok;
  document.body.classList.toggle('is-offline', !ok);
}

// ---------- failures in words ----------

// errorBlock is a failure as a sentence in the page's language, with the
// server's own (English) detail folded away in a closed <details>.
export function errorBlock(sentence, detail) {
  const box = h('div', { class: 'err-block' }, h('p', { class: 'err-sentence' }, ...I.rich(sentence)));
  if (detail && detail !== sentence) {
    box.append(h('details', { class: 'err-detail' },
      h('summary', { text: I.t('err.details') }),
      h('bdi', { class: 'err-raw', dir: 'ltr', text: detail })));
  }
  return box;
}

// failureSentence is what a download's error_code means.
export const failureSentence = (code) => I.errorSentence(code || 'unknown');

// apiSentence is what a refused API call means: its code when the table
// knows it, else what its HTTP status says.
export function apiSentence(e) {
  if (e instanceof ApiError) {
    if (I.hasError(e.code)) return I.errorSentence(e.code);
    if (e.status === 0) return I.t('api.offline');
    const key = `api.${e.status}`;
    if (I.has(key)) return I.t(key);
    return I.t(e.status >= 500 ? 'api.5xx' : 'api.other');
  }
  return I.t('api.other');
}

// fileURL is a file of the output folder as the server serves it.
export function fileURL(path) {
  return `/api/library/file/${String(path).split('/').map(encodeURIComponent).join('/')}`;
}
