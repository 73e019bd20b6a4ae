// A download that waits out an outage (issue 22): it is running, not failed,
// and its row says what it waits for and when it tries again — "Waiting for
// the network — next try in 20 s (attempt 7)" — in place of its speed, with
// the failure in words (the raw error folded away) and a "Try now" button
// (POST …/retry ends the wait).
import { h, setText } from './dom.js';
import { I } from './state.js';
import { errorBlock, failureSentence } from './api.js';
import { running } from './store.js';

// waitOf is the wait of a running download, or null.
export const waitOf = (j) => (j && running(j.state) && j.waiting ? j.waiting : null);

// whatKey names what a wait is for: the server (5xx), its rate limit
// (429), else the network.
function whatKey(w) {
  if (w.reason === 'rate_limited') return 'wait.rateLimited';
  if (w.reason === 'server_error' || w.reason === 'http_error') return 'wait.server';
  return 'wait.network';
}

// whenText is "next try in 20 s (attempt 7)", or "trying again" once the
// time has come.
function whenText(w) {
  const left = Math.ceil((Date.parse(w.next_try) - Date.now()) / 1000);
  const n = I.num(w.attempt);
  return left >= 1 ? I.t('wait.next', { time: I.duration(left), n }) : I.t('wait.now', { n });
}

// waitLabel is the badge of a waiting row.
export const waitLabel = (w) => I.t(whatKey(w));

// waitLine is the whole sentence, as the speed column shows it.
export const waitLine = (w) => I.t('wait.line', { what: I.t(whatKey(w)), when: whenText(w) });

// renderWait fills (or empties) a row's wait block: the reason in words,
// the raw error folded, and the "Try now" button. It returns the block's
// key, which changes only when the row's height may.
export function renderWait(row, j) {
  let box = row.querySelector('.job-wait');
  const w = waitOf(j);
  if (!box) {
    if (!w) return '';
    box = h('div', { class: 'job-wait' });
    row.querySelector('.job-error').before(box);
  }
  const key = w ? `${w.reason}|${w.error}` : '';
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.hidden = !w;
    box.replaceChildren(...(w ? [
      errorBlock(failureSentence(w.reason), w.error),
      h('button', { type: 'button', class: 'btn try-now', 'data-action': 'retry', text: I.t('act.tryNow') }),
    ] : []));
  }
  if (w) setText(box.querySelector('.try-now'), I.t('act.tryNow'));
  return key;
}
