// Telling a person: toasts, the confirm dialog, and a failed call as a
// toast (the offline banner is api.js's).
import { $, h, icon } from './dom.js';
import { I } from './state.js';
import { ApiError, errorBlock, apiSentence } from './api.js';

// toast shows one message at a time: a new one takes the place of the one
// shown (a stack of them covered the rows, issue 25). A toast with a key
// (a download's id) is updated in place by the next one with the same key:
// "Added to the queue" becomes "Already downloaded" when that download
// ends at once, and one add stays one toast.
export function toast(kind, title, body, key) {
  const box = $('toasts');
  const close = h('button', { type: 'button', class: 'icon-btn sm', 'aria-label': I.t('toast.close'), title: I.t('toast.close') }, icon('close'));
  let content = null;
  if (body instanceof Node) content = body;
  else if (body) content = h('bdi', { class: 'toast-text', dir: 'auto', text: body });
  const inner = [h('div', { class: 'toast-body' }, h('span', { class: 'toast-title', text: title }), content), close];
  const same = key ? [...box.children].find((t) => t.dataset.key === key) : null;
  let el = same;
  if (el) {
    el.className = `toast ${kind}`;
    el.setAttribute('role', kind === 'err' ? 'alert' : 'status');
    el.replaceChildren(...inner);
    clearTimeout(el._timer);
  } else {
    el = h('div', { class: `toast ${kind}`, role: kind === 'err' ? 'alert' : 'status', 'data-key': key || null }, ...inner);
    box.replaceChildren(el);
  }
  close.addEventListener('click', () => el.remove());
  el._timer = setTimeout(() => el.remove(), kind === 'err' ? 9000 : 5000);
}

export function confirmDialog(title, text, okLabel) {
  const dlg = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || I.t('dialog.ok');
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

export function reportError(e, what) {
  if (e instanceof ApiError && e.status === 0) return; // the banner says it
  if (e && e.name === 'AbortError') return;
  toast('err', what, errorBlock(apiSentence(e), e.message));
}
