// "Download links on this page…": the links the page held when the person
// asked (read by the service worker into chrome.storage.session), filtered
// by type, picked, and sent to the manager with the page as referrer.
import { send, settings, save } from './lib/manager.js';
import { customList, groupOf, modelName } from './lib/links.js';
import { localize, number, t } from './lib/i18n.js';

const $ = (id) => document.getElementById(id);
let found = { links: [], page: '', title: '', storeId: '' };
let group = '';
const picked = new Set();

function shown() {
  const custom = customList($('custom').value);
  return found.links.filter((l) => {
    l.group = groupOf(l.url, custom);
    return !group || l.group === group;
  });
}

function render() {
  const list = shown();
  const ul = $('links');
  ul.replaceChildren();
  for (const l of list) {
    const li = document.createElement('li');
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = picked.has(l.url);
    box.addEventListener('change', () => {
      if (box.checked) picked.add(l.url); else picked.delete(l.url);
      update();
    });
    const text = document.createElement('bdi');
    text.className = 'text';
    const model = modelName(l.url);
    text.textContent = model || l.text || l.url.split('/').pop() || l.url;
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = l.group ? t(`type${l.group[0].toUpperCase()}${l.group.slice(1)}`) : '';
    tag.hidden = !l.group;
    const url = document.createElement('span');
    url.className = 'url';
    url.textContent = l.url;
    label.append(box, text, tag, url);
    li.append(label);
    ul.append(li);
  }
  $('none').hidden = list.length > 0;
  ul.hidden = list.length === 0;
  update();
}

function update() {
  const list = shown();
  const n = list.filter((l) => picked.has(l.url)).length;
  $('count').textContent = t('linksCount', number(list.length), number(n));
  $('all').checked = list.length > 0 && n === list.length;
  $('send').disabled = n === 0;
  $('send').textContent = t('linksSend', number(n));
}

async function main() {
  localize();
  document.title = t('linksTitle');
  const id = location.hash.slice(1);
  const key = `links:${id}`;
  const got = await chrome.storage.session.get(key);
  if (got[key]) found = got[key];
  $('page-title').textContent = found.title || found.page;
  const s = await settings();
  $('custom').value = s.customTypes;

  for (const b of $('filters').querySelectorAll('button')) {
    b.addEventListener('click', () => {
      group = b.dataset.group;
      for (const o of $('filters').querySelectorAll('button')) o.setAttribute('aria-pressed', String(o === b));
      render();
    });
  }
  $('custom').addEventListener('change', () => {
    save({ customTypes: $('custom').value.trim() });
    render();
  });
  $('all').addEventListener('change', () => {
    for (const l of shown()) {
      if ($('all').checked) picked.add(l.url); else picked.delete(l.url);
    }
    render();
  });
  $('send').addEventListener('click', async () => {
    const urls = shown().filter((l) => picked.has(l.url)).map((l) => l.url);
    $('send').disabled = true;
    const r = await send(urls.map((u) => (modelName(u) ? { model: modelName(u) } : { url: u })), { referrer: found.page, storeId: found.storeId || undefined });
    const res = $('result');
    res.className = r.ok ? 'saved' : 'error';
    res.textContent = r.ok ? t('linksSent', number(r.added)) : r.status === 0 ? t('errUnreachable') : r.status === 401 ? t('errUnpaired') : (r.error || t('errUnknown', String(r.status)));
    if (r.ok) {
      picked.clear();
      chrome.storage.session.remove(key);
    }
    render();
  });
  render();
}

main();
