// Telling a person: toasts, the confirm dialog, and a failed call as a
// toast (the offline banner is api.js's).
import { $, h, icon } from './dom.js';
import { I } from './state.js';
import { ApiError, errorBlock, apiSentence } from './api.js';

export function toast(kind, title, body) {
  const box = $('toasts');
  while (box.children.length >= 3) box.firstElementChild.remove();
  const close = h('button', { type: 'button', class: 'icon-btn sm', 'aria-label': I.t('toast.close'), title: I.t('toast.close') }, icon('close'));
  let content = null;
  if (body instanceof Node) content = body;
  else if (body) content = h('bdi', { class: 'toast-text', dir: 'auto', text: body });
  const el = h('div', { class: `toast ${kind}`, role: kind === 'err' ? 'alert' : 'status' },
    h('div', { class: 'toast-body' }, h('span', { class: 'toast-title', text: title }), content),
    close);
  close.addEventListener('click', () => el.remove());
  box.append(el);
  setTimeout(() => el.remove(), kind === 'err' ? 9000 : 5000);
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
