// The settings page: where the manager is, pairing with it, taking over
// browser downloads, and sending cookies. Every change is saved at once.
import { requestPairing, save, serverURL, settings, status, unpair } from './lib/manager.js';
import { localize, t } from './lib/i18n.js';
import { showState } from './lib/state.js';

const $ = (id) => document.getElementById(id);

function flashSaved(id) {
  const el = $(id);
  el.hidden = false;
  clearTimeout(el.timer);
  el.timer = setTimeout(() => { el.hidden = true; }, 1500);
}

async function refresh() {
  const st = await status();
  showState(st);
  $('pair').hidden = st.state === 'paired';
  $('pair').textContent = st.state === 'pending' ? t('pairAgain') : t('pairButton');
  $('unpair').hidden = st.state !== 'paired';
  return st;
}

// watchPairing asks the manager once a second whether the person allowed
// the pairing, until they did or the request expired (10 minutes).
async function watchPairing() {
  for (let i = 0; i < 600; i++) {
    const st = await refresh();
    if (st.state !== 'pending') return;
    await new Promise((res) => { setTimeout(res, 1000); });
  }
}

async function main() {
  localize();
  document.title = t('settingsTitle');
  const s = await settings();
  $('server').value = s.server;
  $('takeover').checked = s.takeover;
  for (const box of $('types').querySelectorAll('input')) box.checked = s.takeoverTypes.includes(box.value);
  $('custom').value = s.customTypes;
  $('min-size').value = String(s.minSizeMB || 0);
  $('cookies').checked = s.sendCookies;

  $('server-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const url = serverURL($('server').value);
    $('server-error').hidden = !!url;
    if (!url) {
      $('server-error').textContent = t('serverInvalid');
      return;
    }
    const before = await settings();
    // A key belongs to the manager it came from.
    await save(url === before.server ? { server: url } : { server: url, key: '', pairId: '', code: '' });
    $('server').value = url;
    flashSaved('server-saved');
    refresh();
  });
  $('pair').addEventListener('click', async () => {
    const r = await requestPairing();
    if (!r.ok) {
      showState({ state: r.status === 0 ? 'unreachable' : 'unpaired', server: (await settings()).server, error: r.error });
      return;
    }
    watchPairing();
  });
  $('unpair').addEventListener('click', async () => {
    await unpair();
    refresh();
  });

  const saveTakeover = async () => {
    const types = [...$('types').querySelectorAll('input:checked')].map((b) => b.value);
    const min = Math.max(0, Math.floor(Number($('min-size').value) || 0));
    await save({ takeover: $('takeover').checked, takeoverTypes: types, customTypes: $('custom').value.trim(), minSizeMB: min });
    flashSaved('takeover-saved');
  };
  for (const el of [$('takeover'), $('custom'), $('min-size'), ...$('types').querySelectorAll('input')]) {
    el.addEventListener('change', saveTakeover);
  }
  $('cookies').addEventListener('change', () => save({ sendCookies: $('cookies').checked }));

  const st = await refresh();
  if (st.state === 'pending') watchPairing();
}

main();
