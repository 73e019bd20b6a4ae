// Paired browsers (issue 24): the pairing screen the browser extension opens
// (/?pair=<id>: the extension's origin, the browser's name and the code the
// person compares with the extension's, then Allow or Refuse), and the
// header's Browsers dialog that lists the paired browsers and the requests
// waiting, and revokes them (docs/API.md, "Browser extensions").
import { $, h, icon } from './dom.js';
import { I } from './state.js';
import { api, startURL, errorBlock, apiSentence } from './api.js';
import { confirmDialog, reportError, toast } from './toast.js';

// The request the address bar names, while its screen is open.
let asked = startURL.searchParams.get('pair') || '';
let pairState = ''; // '', 'ask', 'paired', 'refused', 'gone'
let current = null; // the request on the pairing screen
let lastList = { paired: [], pending: [] };

// digits writes the code as the person reads it: three and three, in the
// page's digits.
function digits(code) {
  const d = String(code).replace(/\d/g, (c) => I.num(Number(c)));
  return `${d.slice(0, 3)} ${d.slice(3)}`;
}

const originText = (origin) => h('bdi', { class: 'origin', dir: 'ltr', text: origin });

// ---------- the pairing screen ----------

function showPairing(p) {
  current = p;
  const dlg = $('pair-dialog');
  dlg.dataset.state = pairState;
  $('pair-title').textContent = I.t({ ask: 'pair.title', paired: 'pair.titlePaired' }[pairState] || 'pair.titleOther');
  const body = $('pair-body');
  const actions = [];
  if (pairState === 'ask') {
    body.replaceChildren(
      h('p', { text: I.t('pair.ask') }),
      h('dl', { class: 'pair-facts' },
        h('dt', { text: I.t('pair.browser') }), h('dd', {}, h('bdi', { dir: 'auto', text: p.name })),
        h('dt', { text: I.t('pair.origin') }), h('dd', {}, originText(p.origin)),
        h('dt', { text: I.t('pair.code') }), h('dd', {}, h('span', { class: 'pair-code', id: 'pair-code', text: digits(p.code) }))),
      h('p', { class: 'muted small', text: I.t('pair.hint') }),
      h('div', { class: 'form-error', id: 'pair-error', role: 'alert', hidden: true }));
    actions.push(
      h('button', { type: 'button', class: 'btn', id: 'pair-refuse', text: I.t('pair.refuse'), onclick: () => answer(p, false) }),
      h('button', { type: 'button', class: 'btn primary', id: 'pair-allow', text: I.t('pair.allow'), onclick: () => answer(p, true) }));
  } else {
    const text = { paired: 'pair.paired', refused: 'pair.refused', gone: 'pair.gone' }[pairState];
    body.replaceChildren(h('p', { class: pairState === 'paired' ? 'pair-done' : '' },
      pairState === 'paired' ? icon('check') : null, ...I.tn(text, { name: h('bdi', { dir: 'auto', text: p ? p.name : '' }) })));
    actions.push(h('button', { type: 'button', class: 'btn primary', id: 'pair-close', text: I.t('pair.close'), onclick: closePairing }));
  }
  $('pair-actions').replaceChildren(...actions);
  if (!dlg.open) dlg.showModal();
}

function closePairing() {
  $('pair-dialog').close();
}

async function answer(p, allow) {
  try {
    if (allow) await api('POST', `/api/pairings/${encodeURIComponent(p.id)}/approve`);
    else await api('DELETE', `/api/pairings/${encodeURIComponent(p.id)}`);
    pairState = allow ? 'paired' : 'refused';
  } catch (e) {
    if (e.status === 404) {
      pairState = 'gone';
    } else {
      const box = $('pair-error');
      box.replaceChildren(errorBlock(apiSentence(e), e.message));
      box.hidden = false;
      return;
    }
  }
  showPairing(p);
  if ($('browsers-dialog').open) loadBrowsers();
}

// openPairing shows the request the address names: asked once, when the
// page starts; the address loses ?pair= so that a reload does not ask again.
async function openPairing() {
  const url = new URL(location.href);
  url.searchParams.delete('pair');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  let list;
  try {
    list = await api('GET', '/api/pairings');
  } catch (e) {
    reportError(e, I.t('browsers.unread'));
    return;
  }
  const p = (list.pending || []).find((r) => r.id === asked);
  pairState = p ? 'ask' : 'gone';
  showPairing(p);
}

// ---------- the Browsers dialog ----------

function browserRow(p, pending) {
  const when = pending
    ? I.t('browsers.waiting', { code: digits(p.code) })
    : [I.t('browsers.pairedAt', { date: I.date(p.paired_at) }), p.last_used ? I.t('browsers.lastUsed', { date: I.date(p.last_used) }) : ''].filter(Boolean).join(I.t('sep'));
  const buttons = pending
    ? [h('button', { type: 'button', class: 'btn sm primary', 'data-allow': p.id, text: I.t('pair.allow') }),
      h('button', { type: 'button', class: 'btn sm', 'data-refuse': p.id, text: I.t('pair.refuse') })]
    : [h('button', { type: 'button', class: 'btn sm danger', 'data-revoke': p.id, text: I.t('browsers.revoke'), 'aria-label': I.t('browsers.revokeLabel', { name: p.name }) })];
  return h('li', { class: pending ? 'browser-row pending' : 'browser-row', 'data-id': p.id },
    h('div', { class: 'browser-info' },
      h('bdi', { class: 'browser-name', dir: 'auto', text: p.name }),
      originText(p.origin),
      h('span', { class: 'muted small', text: when })),
    h('div', { class: 'browser-actions' }, ...buttons));
}

function showBrowsers(list) {
  lastList = list;
  const rows = [...list.pending.map((p) => browserRow(p, true)), ...list.paired.map((p) => browserRow(p, false))];
  $('browsers-list').replaceChildren(...rows);
  $('browsers-empty').hidden = rows.length > 0;
}

async function loadBrowsers() {
  try {
    const list = await api('GET', '/api/pairings');
    $('browsers-open').hidden = !list.enabled;
    showBrowsers({ paired: list.paired || [], pending: list.pending || [] });
  } catch (e) {
    reportError(e, I.t('browsers.unread'));
  }
}

async function onBrowsersClick(e) {
  const btn = e.target.closest('button[data-revoke], button[data-allow], button[data-refuse]');
  if (!btn) return;
  const all = [...lastList.paired, ...lastList.pending];
  const id = btn.dataset.revoke || btn.dataset.allow || btn.dataset.refuse;
  const p = all.find((x) => x.id === id);
  if (!p) return;
  try {
    if (btn.dataset.revoke) {
      if (!await confirmDialog(I.t('browsers.revokeTitle'), I.t('browsers.revokeText', { name: p.name }), I.t('browsers.revoke'))) return;
      await api('DELETE', `/api/pairings/${encodeURIComponent(id)}`);
      toast('info', I.t('browsers.revoked'), p.name);
    } else if (btn.dataset.allow) {
      await api('POST', `/api/pairings/${encodeURIComponent(id)}/approve`);
    } else {
      await api('DELETE', `/api/pairings/${encodeURIComponent(id)}`);
    }
  } catch (err) {
    reportError(err, I.t('browsers.notChanged'));
  }
  loadBrowsers();
}

// redrawBrowsers is for a switch of language.
export function redrawBrowsers() {
  showBrowsers(lastList);
  if ($('pair-dialog').open) showPairing(current);
}

export function wireBrowsers() {
  $('browsers-open').addEventListener('click', () => {
    $('browsers-dialog').showModal();
    loadBrowsers();
  });
  $('browsers-close').addEventListener('click', () => $('browsers-dialog').close());
  $('browsers-list').addEventListener('click', onBrowsersClick);
  if (asked) {
    openPairing().then(() => loadBrowsers());
  } else {
    loadBrowsers();
  }
}
