// The extension's service worker (an event page in Firefox): the context
// menus, and — when the person turned it on — taking over the browser's
// downloads. It holds no state of its own between events: settings are in
// chrome.storage.local, a page's links in chrome.storage.session.
import { settings, send } from './lib/manager.js';
import { customList, matchesTakeover, modelName } from './lib/links.js';
import { t } from './lib/i18n.js';

const menuLink = 'omd-link';
const menuPage = 'omd-page';

function createMenus() {
  chrome.contextMenus.removeAll(() => {
    chrome.contextMenus.create({ id: menuLink, title: t('menuLink'), contexts: ['link', 'video', 'audio'] });
    chrome.contextMenus.create({ id: menuPage, title: t('menuPage'), contexts: ['page'] });
  });
}
chrome.runtime.onInstalled.addListener(createMenus);
chrome.runtime.onStartup.addListener(createMenus);

// flash shows on the toolbar button how a hand-over went: a tick, or a
// "!" with the reason in the button's tooltip.
async function flash(ok, reason = '') {
  await chrome.action.setBadgeBackgroundColor({ color: ok ? '#15803d' : '#b91c1c' });
  await chrome.action.setBadgeText({ text: ok ? '✓' : '!' });
  await chrome.action.setTitle({ title: ok ? t('actionTitle') : `${t('actionTitle')} — ${reason}` });
  if (ok) setTimeout(() => chrome.action.setBadgeText({ text: '' }), 4000);
}

// reasonFor is a sentence for a failed hand-over.
function reasonFor(r) {
  if (r.status === 0) return t('errUnreachable');
  if (r.status === 401) return t('errUnpaired');
  if (r.status === 403) return t('errRefused');
  return r.error || t('errUnknown', String(r.status));
}

// item is what the manager is sent for a link: a model name for an Ollama
// model page, else the URL.
const item = (url) => (modelName(url) ? { model: modelName(url) } : { url });

// onMenuClick is the context menus' handler (exported for the browser
// tests, which cannot click a native menu).
export async function onMenuClick(info, tab) {
  if (info.menuItemId === menuPage) return openLinksPage(tab);
  if (info.menuItemId !== menuLink) return null;
  const url = info.linkUrl || info.srcUrl;
  if (!/^https?:/i.test(url || '')) {
    await flash(false, t('errNotHTTP'));
    return { ok: false, error: t('errNotHTTP') };
  }
  const r = await send([item(url)], { referrer: info.frameUrl || info.pageUrl || '', storeId: tab && tab.cookieStoreId });
  await flash(r.ok, r.ok ? '' : reasonFor(r));
  if (r.status === 401) chrome.runtime.openOptionsPage();
  return r;
}
chrome.contextMenus.onClicked.addListener((info, tab) => { onMenuClick(info, tab); });

// collectLinks runs in the page: its links and media, with their text.
function collectLinks() {
  const out = [];
  const seen = new Set();
  const add = (href, text) => {
    if (!href || seen.has(href) || !/^https?:/i.test(href)) return;
    seen.add(href);
    out.push({ url: href, text: (text || '').replace(/\s+/g, ' ').trim().slice(0, 200) });
  };
  for (const a of document.querySelectorAll('a[href], area[href]')) add(a.href, a.textContent || a.title);
  for (const m of document.querySelectorAll('video[src], audio[src], source[src]')) add(m.src, m.title);
  return { links: out.slice(0, 5000), page: location.href, title: document.title };
}

// openLinksPage reads the page's links and opens the list to pick from.
export async function openLinksPage(tab) {
  let found;
  try {
    const [res] = await chrome.scripting.executeScript({ target: { tabId: tab.id }, func: collectLinks });
    found = res && res.result;
  } catch (e) {
    await flash(false, t('errNoLinks'));
    return { ok: false, error: String(e && e.message || e) };
  }
  const id = crypto.randomUUID();
  await chrome.storage.session.set({ [`links:${id}`]: { ...found, storeId: tab.cookieStoreId || '' } });
  await chrome.tabs.create({ url: chrome.runtime.getURL(`links.html#${id}`), index: tab.index + 1 });
  return { ok: true, count: found.links.length };
}

// takeOver decides about one browser download and hands it to the manager
// when the person asked for it. It returns true when the manager took it
// (the browser's download is then cancelled and erased), false when the
// browser keeps it — also whenever the manager is not running or refuses.
export async function takeOver(dl) {
  const s = await settings();
  const url = dl.url || '';
  if (!s.takeover || !s.key || dl.incognito || dl.state !== 'in_progress' || !/^https?:/i.test(url)) return false;
  if (dl.byExtensionId === chrome.runtime.id) return false;
  // The manager's own files (its Library) stay with the browser.
  if (new URL(url).origin === new URL(s.server).origin) return false;
  const size = dl.totalBytes > 0 ? dl.totalBytes : dl.fileSize;
  const rule = { types: s.takeoverTypes, custom: customList(s.customTypes), minBytes: Number(s.minSizeMB) * 1024 * 1024 };
  if (!matchesTakeover({ url, filename: dl.filename, size }, rule)) return false;
  const r = await send([{ url }], { referrer: dl.referrer || '' });
  if (!r.ok) {
    await flash(false, reasonFor(r));
    return false;
  }
  try {
    await chrome.downloads.cancel(dl.id);
    await chrome.downloads.erase({ id: dl.id });
  } catch {
    // already gone
  }
  await flash(true);
  return true;
}

// Chromium asks extensions about a download's name once its answer's
// headers are in (type and size known) and before the file is kept: the
// moment to take it. Firefox has no such event: there the download is
// taken when it is created.
if (chrome.downloads.onDeterminingFilename) {
  chrome.downloads.onDeterminingFilename.addListener((dl, suggest) => {
    takeOver(dl).then((taken) => { if (!taken) suggest(); }, () => suggest());
    return true; // suggest is called later
  });
} else {
  chrome.downloads.onCreated.addListener((dl) => { takeOver(dl); });
}

// For the browser tests and for debugging from the service worker's console.
globalThis.omd = { onMenuClick, openLinksPage, takeOver };
