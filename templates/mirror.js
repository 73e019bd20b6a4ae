// The model mirror, on the Library tab: started and stopped from the page,
// its address, pull command and statistics, followed while they are shown.
import { $, h, icon, setText } from './dom.js';
import { I } from './state.js';
import { api } from './api.js';
import { toast, reportError } from './toast.js';
import { currentTab } from './tabs.js';

export let mirror = { running: false };
export let mirrorTimer = 0;
const cacheChoices = [0, 10 * 2 ** 30, 50 * 2 ** 30, 100 * 2 ** 30, 250 * 2 ** 30, 500 * 2 ** 30, 2 ** 40];

export function showCacheChoices() {
  const sel = $('mirror-cache-max');
  const cur = sel.value;
  sel.replaceChildren(...cacheChoices.map((v) => h('option', { value: String(v), text: v ? I.bytes(v) : I.t('mirror.cacheNone') })));
  sel.value = cur || '0';
}

export function showMirror(m) {
  mirror = m || { running: false };
  const on = !!mirror.running;
  $('mirror-info').hidden = !on;
  $('mirror-state').replaceChildren(...I.tn(on ? 'mirror.on' : 'mirror.off'));
  const toggle = $('mirror-toggle');
  toggle.setAttribute('aria-pressed', String(on));
  toggle.replaceChildren(icon(on ? 'pause' : 'play'), h('span', { text: I.t(on ? 'mirror.stop' : 'mirror.start') }));
  const upstream = typeof mirror.upstream === 'string' ? mirror.upstream : '';
  if (on) {
    $('mirror-upstream').checked = !!upstream;
    if (upstream) $('mirror-upstream-url').value = upstream;
    if (typeof mirror.cache_max === 'number') $('mirror-cache-max').value = cacheChoices.includes(mirror.cache_max) ? String(mirror.cache_max) : '0';
  }
  // The options apply when the mirror starts: fixed while it runs.
  for (const id of ['mirror-upstream', 'mirror-upstream-url', 'mirror-cache-max']) $(id).disabled = on;
  $('mirror-upstream-url').hidden = !$('mirror-upstream').checked;
  $('mirror-cache-max').closest('label').hidden = !$('mirror-upstream').checked;
  if (on) {
    setText($('mirror-address'), mirror.address || '');
    setText($('mirror-command'), mirror.pull_command || mirror.pull_example || '');
    const st = mirror.stats || null;
    const dl = $('mirror-stats');
    dl.hidden = !st;
    if (st) {
      const item = (key, value) => h('div', { 'data-stat': key.slice('mirror.stat'.length).toLowerCase() }, h('dt', { text: I.t(key) }), h('dd', { text: value }));
      dl.replaceChildren(
        item('mirror.statModels', I.num(st.cached_models || 0)),
        item('mirror.statServed', I.bytes(st.bytes_served || 0)),
        upstream ? item('mirror.statUpstream', I.bytes(st.bytes_upstream || 0)) : '',
        upstream ? item('mirror.statSaved', I.bytes(st.bytes_saved || 0)) : '',
        item('mirror.statClients', I.num(st.clients || 0)));
    }
  }
}

export async function loadMirror() {
  clearTimeout(mirrorTimer);
  try {
    showMirror(await api('GET', '/api/mirror'));
  } catch (e) {
    reportError(e, I.t('toast.mirrorUnread'));
  }
  // The statistics move while it serves: follow them while they are shown.
  if (mirror.running && currentTab === 'library' && document.visibilityState === 'visible') {
    mirrorTimer = setTimeout(loadMirror, 2000);
  }
}

async function toggleMirror() {
  const btn = $('mirror-toggle');
  btn.disabled = true;
  try {
    const body = {};
    if (!mirror.running && $('mirror-upstream').checked) {
      body.upstream = $('mirror-upstream-url').value.trim();
      const max = $('mirror-cache-max').value;
      if (max && max !== '0') body.cache_max = max;
    }
    const m = await api('POST', mirror.running ? '/api/mirror/stop' : '/api/mirror/start', body);
    showMirror(m);
    toast(m.running ? 'ok' : 'info', I.t(m.running ? 'toast.mirrorOn' : 'toast.mirrorOff'), m.running ? m.address : '');
    if (m.running) loadMirror();
  } catch (e) {
    reportError(e, I.t('toast.mirrorUnchanged'));
  } finally {
    btn.disabled = false;
  }
}

async function copyMirrorCommand() {
  const text = $('mirror-command').textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast('ok', I.t('toast.copied'));
  } catch {
    // No clipboard (plain http on another host): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($('mirror-command'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    toast('info', I.t('toast.copyByHand'));
  }
}

export function wireMirror() {
  $('mirror-toggle').addEventListener('click', toggleMirror);
  $('mirror-copy').addEventListener('click', copyMirrorCommand);
  $('mirror-upstream').addEventListener('change', () => showMirror(mirror));
}
