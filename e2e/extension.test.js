// The browser extension (extension/) in a real Chromium: loaded unpacked
// into a headless persistent context, against the real binary and a local
// origin. In order: an unpaired extension and a foreign page are refused;
// the extension is paired from its settings page and the web UI's pairing
// screen; a link goes by the context menu's handler; a cookie-protected
// URL arrives with its cookie (and the cookie is gone once it is done); a
// download started by clicking a link is taken over, and stays with the
// browser when the manager is not running; a page's links are picked by
// type; the popup shows a running download; revoking in the web UI shuts
// the extension out. Then the extension's pages in Persian.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrigin, contentSHA256, sessionCookie } from './lib/origin.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchWithExtension } from './lib/browser.js';
import { shotDir, waitFor, apiClient, visibleTexts, latinRe } from './lib/page.js';

const extDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'extension');

let tmp;
let origin;
let bin;
let omd;
let ext; // { context, worker, id }
const consoleErrors = [];

const api = (...args) => apiClient(omd.url)(...args);

async function jobNamed(name) {
  const { downloads } = await api('GET', '/api/downloads');
  return downloads.find((d) => d.name === name);
}

// waitJob waits until the download named name is in one of states.
function waitJob(name, states, timeoutMs = 30_000) {
  return waitFor(`${name} to be ${states.join(' or ')}`, async () => {
    const j = await jobNamed(name);
    return j && states.includes(j.state) ? j : null;
  }, timeoutMs);
}

// extPage opens one of the extension's pages in a tab.
async function extPage(file, viewport = { width: 1100, height: 900 }) {
  const p = await ext.context.newPage();
  await p.setViewportSize(viewport);
  // The browser logs each answer it did not like: a 401 is how the manager
  // says "not paired", a refused connection that it is not running.
  const expected = /Failed to load resource: (the server responded with a status of 401|net::ERR_CONNECTION_REFUSED)/;
  p.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) consoleErrors.push(`${file}: ${m.text()}`); });
  p.on('pageerror', (e) => consoleErrors.push(`${file}: ${e.message}`));
  await p.goto(`chrome-extension://${ext.id}/${file}`);
  return p;
}

// menu calls the context menus' handler in the service worker, as a click
// on the native menu would (a test cannot click a native menu).
function menu(info) {
  return ext.worker.evaluate(async (i) => {
    const [tab] = await chrome.tabs.query({ active: true });
    return globalThis.omd.onMenuClick(i, tab);
  }, info);
}

async function setSettings(changes) {
  await ext.worker.evaluate((c) => chrome.storage.local.set(c), changes);
}

// sinceNow is the origin's requests from here on.
function requestsSince() {
  const from = origin.requests.length;
  return () => origin.requests.slice(from);
}

async function filesUnder(dir) {
  const out = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

describe('what a link is (extension/lib/links.js)', () => {
  it('groups links by type, names models, and decides about a take-over', async () => {
    const { groupOf, modelName, matchesTakeover, customList, extensionOf } = await import('../extension/lib/links.js');
    assert.equal(extensionOf('https://x.example/a/B.ZIP?x=1'), 'zip');
    assert.equal(extensionOf('https://x.example/dir/'), '');
    assert.equal(groupOf('https://x.example/ubuntu.iso'), 'images');
    assert.equal(groupOf('https://x.example/a.tar.gz'), 'archives');
    assert.equal(groupOf('https://x.example/m.gguf'), 'models');
    assert.equal(groupOf('https://x.example/book.pdf'), '');
    assert.equal(groupOf('https://x.example/book.pdf', customList('PDF, .epub')), 'custom');
    assert.equal(modelName('https://ollama.com/library/llama3.2:1b'), 'llama3.2:1b');
    assert.equal(modelName('https://ollama.com/library/qwen3'), 'qwen3');
    assert.equal(modelName('https://ollama.com/blog/post'), '');
    assert.equal(modelName('https://evil.example/library/llama3'), '');
    const rule = { types: ['video'], custom: [], minBytes: 100 << 20 };
    assert.equal(matchesTakeover({ url: 'https://x.example/film.mkv', size: -1 }, rule), true);
    assert.equal(matchesTakeover({ url: 'https://x.example/get?id=1', filename: '/home/u/Downloads/film.mp4', size: 0 }, rule), true);
    assert.equal(matchesTakeover({ url: 'https://x.example/big.bin', size: 200 << 20 }, rule), true);
    assert.equal(matchesTakeover({ url: 'https://x.example/small.bin', size: 1 << 20 }, rule), false);
    assert.equal(matchesTakeover({ url: 'https://x.example/unknown.bin', size: -1 }, rule), false);
    assert.equal(matchesTakeover({ url: 'https://x.example/big.bin', size: 200 << 20 }, { types: [], custom: [], minBytes: 0 }), false);
  });
});

describe('the extension\'s languages', () => {
  it('have the same messages and placeholders in English and Persian', async () => {
    const read = async (code) => JSON.parse(await fs.readFile(path.join(extDir, '_locales', code, 'messages.json'), 'utf8'));
    const [en, fa] = [await read('en'), await read('fa')];
    assert.deepEqual(Object.keys(fa).sort(), Object.keys(en).sort());
    const subs = (m) => [...m.message.matchAll(/\$\d/g)].map((x) => x[0]).sort();
    for (const k of Object.keys(en)) assert.deepEqual(subs(fa[k]), subs(en[k]), `$n in "${k}"`);
    // Every message the code and the pages use is there.
    const files = ['background.js', 'popup.js', 'options.js', 'links.js', 'lib/state.js', 'popup.html', 'options.html', 'links.html', 'manifest.json'];
    const text = (await Promise.all(files.map((f) => fs.readFile(path.join(extDir, f), 'utf8')))).join('\n');
    const used = new Set([
      ...[...text.matchAll(/\bt\('([A-Za-z_]+)'/g)].map((m) => m[1]),
      ...[...text.matchAll(/data-i18n(?:-[a-z]+)?="([A-Za-z_]+)"/g)].map((m) => m[1]),
      ...[...text.matchAll(/__MSG_([A-Za-z_]+)__/g)].map((m) => m[1]),
    ]);
    assert.ok(used.size > 50, `found ${used.size}`);
    assert.deepEqual([...used].filter((k) => !(k in en)), []);
  });
});

describe('browser extension in headless Chromium', { timeout: 240_000 }, () => {
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-ext-'));
    await fs.mkdir(shotDir, { recursive: true });
    origin = await startOrigin();
    bin = await buildBinary(tmp);
    omd = await startOmd(bin, path.join(tmp, 'out'), { args: ['-v'] }); // -v: every request logged
    ext = await launchWithExtension(extDir, { profileDir: path.join(tmp, 'profile'), downloadsDir: path.join(tmp, 'browser-downloads') });
    await setSettings({ server: omd.url });
  });

  after(async () => {
    await ext?.context.close();
    await omd?.stop();
    await origin?.close();
  });

  it('loads with its menus, in the browser\'s language', async () => {
    const info = await ext.worker.evaluate(() => ({
      name: chrome.runtime.getManifest().name, menu: chrome.i18n.getMessage('menuLink'), omd: typeof globalThis.omd,
      perms: chrome.runtime.getManifest().permissions,
    }));
    assert.equal(info.menu, 'Download with Ollama Model Downloader');
    assert.equal(info.omd, 'object');
    assert.deepEqual(info.perms.sort(), ['activeTab', 'contextMenus', 'cookies', 'downloads', 'scripting', 'storage']);
  });

  it('an unpaired extension is refused', async () => {
    const seen = requestsSince();
    const r = await menu({ menuItemId: 'omd-link', linkUrl: origin.url('unpaired.bin', 1000), pageUrl: `${origin.base}/` });
    assert.equal(r.status, 401, JSON.stringify(r));
    // Its fetch metadata says "not a web page" (Sec-Fetch-Site: none),
    // which used to let any extension's POST through.
    const direct = await ext.worker.evaluate(async (base) => (await fetch(new URL('/api/downloads/pause-all', base), { method: 'POST' })).status, omd.url);
    assert.equal(direct, 401);
    assert.equal(await jobNamed('unpaired.bin'), undefined);
    assert.equal(seen().length, 0, 'the origin was never asked');
    const p = await extPage('popup.html', { width: 380, height: 500 });
    await waitFor('the popup to say not paired', () => p.locator('#state[data-state="unpaired"]').count());
    await p.close();
  });

  it('a foreign origin is refused', async () => {
    const page = await ext.context.newPage();
    await page.goto(origin.pageURL([]));
    const got = await page.evaluate(async (base) => {
      const out = {};
      try {
        const r = await fetch(new URL('/api/download/add', base), { method: 'POST', body: new URLSearchParams({ url: 'https://x.example/evil.bin' }) });
        out.cors = r.status;
      } catch (e) {
        out.cors = e.name; // the browser blocks the answer: no CORS headers for a web page
      }
      await fetch(new URL('/api/download/add', base), { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ url: 'https://x.example/evil.bin' }) });
      try {
        await fetch(new URL('/api/downloads', base), { headers: { Authorization: 'Bearer omdx_stolen' } });
        out.preflight = 'passed';
      } catch (e) {
        out.preflight = e.name;
      }
      return out;
    }, omd.url);
    await page.close();
    assert.equal(got.cors, 'TypeError');
    assert.equal(got.preflight, 'TypeError');
    assert.equal(await jobNamed('evil.bin'), undefined, 'a web page added a download');
    const r = await fetch(new URL('/api/download/add', omd.url), { method: 'POST', headers: { Origin: origin.base }, body: new URLSearchParams({ url: 'https://x.example/evil.bin' }) });
    assert.equal(r.status, 403);
  });

  let code;
  it('pairs: the settings page asks, the web UI shows the code, the person allows it', async () => {
    const settings = await extPage('options.html');
    await waitFor('the settings to say not paired', () => settings.locator('#state[data-state="unpaired"]').count());
    const opened = ext.context.waitForEvent('page', { timeout: 15_000 });
    await settings.click('#pair');
    const ui = await opened;
    await ui.setViewportSize({ width: 1366, height: 850 });
    await ui.waitForURL(/\/\?pair=p/);
    await waitFor('the settings to show the code', () => settings.locator('#state[data-state="pending"] #state-code:not([hidden])').count());
    code = (await settings.textContent('#state-code')).replace(/\s/g, '');
    assert.match(code, /^\d{6}$/);

    // The web UI's pairing screen: origin, browser, and the same code.
    const dialog = ui.locator('#pair-dialog');
    await dialog.waitFor({ state: 'visible', timeout: 15_000 });
    const shown = await dialog.textContent();
    assert.ok(shown.includes(`chrome-extension://${ext.id}`), `the dialog names the extension's origin: ${shown}`);
    const uiCode = (await ui.textContent('#pair-code')).replace(/[^\d۰-۹]/g, '').replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06F0));
    assert.equal(uiCode, code, 'the page shows the code the extension shows');
    await settings.screenshot({ path: path.join(shotDir, 'ext-en-settings-pending.png'), fullPage: true });
    await ui.screenshot({ path: path.join(shotDir, 'ext-fa-pairing.png') });
    await ui.click('#pair-allow');
    await waitFor('the settings to say paired', () => settings.locator('#state[data-state="paired"]').count());
    await waitFor('the page to confirm', () => ui.locator('#pair-dialog[data-state="paired"]').count());
    await ui.screenshot({ path: path.join(shotDir, 'ext-fa-paired.png') });
    await ui.close();
    await settings.screenshot({ path: path.join(shotDir, 'ext-en-settings-paired.png'), fullPage: true });
    await settings.close();
    const { paired } = await api('GET', '/api/pairings');
    assert.equal(paired.length, 1);
    assert.equal(paired[0].origin, `chrome-extension://${ext.id}`);
  });

  it('sends a link by the context-menu handler', async () => {
    const file = { name: 'menu-link.bin', size: 1 << 20 };
    const r = await menu({ menuItemId: 'omd-link', linkUrl: origin.url(file.name, file.size), pageUrl: `${origin.base}/page.html` });
    assert.ok(r.ok, JSON.stringify(r));
    const j = await waitJob(file.name, ['completed']);
    const data = await fs.readFile(path.join(tmp, 'out', j.path));
    assert.equal(createHash(data), contentSHA256(file.size));
  });

  it('a cookie-protected URL arrives with its cookie, which is gone once it is done', async () => {
    const page = await ext.context.newPage();
    await page.goto(`${origin.base}/login`); // the site sets its HttpOnly session cookie
    const file = { name: 'members-only.bin', size: 2 << 20 };
    const url = origin.privateURL(file.name, file.size, 1 << 20); // ~2 s, so it can be caught running
    const seen = requestsSince();
    const ua = await page.evaluate(() => navigator.userAgent);
    const r = await menu({ menuItemId: 'omd-link', linkUrl: url, pageUrl: `${origin.base}/login` });
    assert.ok(r.ok, JSON.stringify(r));
    const running = await waitJob(file.name, ['downloading', 'completed']);
    assert.deepEqual(running.request_headers, ['Cookie', 'Referer', 'User-Agent']);
    const j = await waitJob(file.name, ['completed']);
    const reqs = seen().filter((q) => q.url.startsWith('/private/'));
    assert.ok(reqs.length > 0);
    for (const q of reqs) {
      assert.ok(q.cookie.includes(`${sessionCookie.name}=${sessionCookie.value}`), `request without the cookie: ${JSON.stringify(q)}`);
      assert.equal(q.referer, `${origin.base}/login`);
      assert.equal(q.userAgent, ua);
    }
    assert.equal(createHash(await fs.readFile(path.join(tmp, 'out', j.path))), contentSHA256(file.size));
    // The secret is nowhere in the output folder (state, queue, history, the
    // headers' file removed), and not in the server's output (its log).
    for (const f of await filesUnder(path.join(tmp, 'out'))) {
      const text = await fs.readFile(f, 'latin1');
      assert.ok(!text.includes(sessionCookie.value), `${f} holds the cookie`);
    }
    assert.ok(!omd.output().includes(sessionCookie.value), 'the -v log holds the cookie');
    assert.match(omd.output(), /Cookie: \[redacted, \d+ bytes\]/, 'the -v log says a cookie went, without it');
    await page.close();
  });

  it('takes over a download started by clicking a link', async () => {
    await setSettings({ takeover: true, takeoverTypes: ['archives'], minSizeMB: 0 });
    const file = { name: 'clicked.zip', size: 1 << 20 };
    const page = await ext.context.newPage();
    await page.goto(origin.pageURL([{ href: origin.url(file.name, file.size), text: 'the archive' }]));
    const ua = await page.evaluate(() => navigator.userAgent);
    const seen = requestsSince();
    await page.click('#link-0');
    const j = await waitJob(file.name, ['completed']);
    assert.equal(createHash(await fs.readFile(path.join(tmp, 'out', j.path))), contentSHA256(file.size));
    const fromManager = seen().filter((q) => q.userAgent === ua && q.method === 'GET' && q.referer === page.url());
    assert.ok(fromManager.length > 0, 'the manager asked with the browser\'s user-agent and the page as referrer');
    const inBrowser = await ext.worker.evaluate(() => chrome.downloads.search({}));
    assert.equal(inBrowser.filter((d) => d.state === 'complete').length, 0, `the browser kept a download: ${JSON.stringify(inBrowser)}`);
    await page.close();
  });

  it('leaves a download of another type to the browser, and every download when the manager is not running', async () => {
    const page = await ext.context.newPage();
    const other = { name: 'notes.txt', size: 4000 };
    const zip = { name: 'while-stopped.zip', size: 5000 };
    await page.goto(origin.pageURL([{ href: origin.url(other.name, other.size), text: 'text' }, { href: origin.url(zip.name, zip.size), text: 'zip' }]));
    await page.click('#link-0');
    const done = (name) => waitFor(`the browser to finish ${name}`, () => ext.worker.evaluate(async (n) => {
      const all = await chrome.downloads.search({ state: 'complete' });
      return all.some((d) => d.filename.endsWith(n));
    }, name));
    await done(other.name);
    assert.equal(await jobNamed(other.name), undefined);

    await setSettings({ server: await closedPortURL() }); // nothing listens there
    await page.click('#link-1');
    await done(zip.name);
    const popup = await extPage('popup.html', { width: 380, height: 500 });
    await waitFor('the popup to say unreachable', () => popup.locator('#state[data-state="unreachable"]').count());
    await popup.close();
    await setSettings({ server: omd.url });
    await page.close();
  });

  it('picks a page\'s links by type', async () => {
    const page = await ext.context.newPage();
    const links = [
      { href: origin.url('pick-a.zip', 3000), text: 'archive A' },
      { href: origin.url('pick-b.tar.gz', 3000), text: 'archive B' },
      { href: origin.url('pick-c.iso', 3000), text: 'disc' },
      { href: origin.url('pick-d.mp4', 3000), text: 'film' },
      { href: 'https://ollama.com/library/tinyllama:1.1b', text: 'a model' },
      { href: `${origin.base}/about.html`, text: 'about' },
    ];
    await page.goto(origin.pageURL(links));
    const opened = ext.context.waitForEvent('page', { timeout: 15_000 });
    const r = await ext.worker.evaluate(async (u) => {
      const [tab] = await chrome.tabs.query({ url: u });
      return globalThis.omd.onMenuClick({ menuItemId: 'omd-page', pageUrl: u }, tab);
    }, page.url());
    assert.ok(r.ok, JSON.stringify(r));
    const list = await opened;
    await list.setViewportSize({ width: 1000, height: 800 });
    await list.locator('#links li').first().waitFor();
    assert.equal(await list.locator('#links li').count(), links.length);
    await list.click('#filters [data-group="archives"]');
    assert.equal(await list.locator('#links li').count(), 2);
    await list.check('#all');
    await list.screenshot({ path: path.join(shotDir, 'ext-en-links.png'), fullPage: true });
    await list.click('#send');
    await waitFor('the result', () => list.locator('#result.saved').count());
    await waitJob('pick-a.zip', ['completed']);
    await waitJob('pick-b.tar.gz', ['completed']);
    await list.click('#filters [data-group="models"]');
    assert.deepEqual(await list.locator('#links .text').allTextContents(), ['tinyllama:1.1b']);
    await list.close();
    await page.close();
  });

  it('the popup shows running downloads with speed and progress', async () => {
    const file = { name: 'popup-slow.bin', size: 24 << 20 };
    await menu({ menuItemId: 'omd-link', linkUrl: origin.url(file.name, file.size, 256 << 10), pageUrl: `${origin.base}/` });
    await waitJob(file.name, ['downloading']);
    const popup = await extPage('popup.html', { width: 380, height: 560 });
    await waitFor('the popup to say paired', () => popup.locator('#state[data-state="paired"]').count());
    const row = popup.locator('.job', { hasText: file.name });
    await row.waitFor({ timeout: 10_000 });
    await waitFor('a speed in the row', async () => /\/s/.test(await row.locator('.figures').textContent()));
    await waitFor('progress above 0', async () => Number(await row.locator('[role="progressbar"]').getAttribute('aria-valuenow')) > 0);
    assert.match(await popup.textContent('#summary'), /1 running/);
    await popup.screenshot({ path: path.join(shotDir, 'ext-en-popup.png') });
    await popup.close();
    await api('POST', `/api/download/${(await jobNamed(file.name)).id}/cancel`);
  });

  it('revoked in the web UI, the extension is refused again', async () => {
    const ui = await ext.context.newPage();
    await ui.setViewportSize({ width: 1366, height: 850 });
    await ui.goto(`${omd.url}?lang=en`);
    await ui.click('#browsers-open');
    const dialog = ui.locator('#browsers-dialog');
    await dialog.waitFor({ state: 'visible' });
    await dialog.locator('.browser-row').first().waitFor();
    assert.ok((await dialog.textContent()).includes(`chrome-extension://${ext.id}`));
    await ui.screenshot({ path: path.join(shotDir, 'ext-en-browsers.png') });
    await dialog.locator('[data-revoke]').first().click();
    await ui.locator('#confirm button[value="ok"]').click();
    await waitFor('the list to be empty', () => dialog.locator('.browser-row').count().then((n) => n === 0));
    await ui.close();
    const r = await menu({ menuItemId: 'omd-link', linkUrl: origin.url('after-revoke.bin', 1000), pageUrl: `${origin.base}/` });
    assert.equal(r.status, 401);
    assert.equal(await jobNamed('after-revoke.bin'), undefined);
  });

  it('no console errors in the extension\'s pages', () => {
    assert.deepEqual(consoleErrors, []);
  });
});

describe('the extension in Persian', { timeout: 120_000 }, () => {
  let fa;
  before(async () => {
    fa = await launchWithExtension(extDir, { lang: 'fa', profileDir: path.join(tmp, 'profile-fa'), downloadsDir: path.join(tmp, 'browser-downloads-fa') });
    await fa.worker.evaluate((c) => chrome.storage.local.set(c), { server: await closedPortURL() });
  });
  after(async () => { await fa?.context.close(); });

  it('follows the browser\'s language: right to left, no English outside names', async () => {
    assert.equal(await fa.worker.evaluate(() => chrome.i18n.getMessage('menuLink')), 'دانلود با دانلودر مدل‌ها');
    for (const [file, vp] of [['popup.html', { width: 380, height: 420 }], ['options.html', { width: 1100, height: 900 }], ['links.html', { width: 1000, height: 600 }]]) {
      const p = await fa.context.newPage();
      await p.setViewportSize(vp);
      await p.goto(`chrome-extension://${fa.id}/${file}`);
      await waitFor(`${file} to be filled`, () => p.evaluate(() => document.documentElement.dir === 'rtl' && document.body.innerText.length > 20));
      if (file !== 'links.html') await waitFor('the state', () => p.locator('#state[data-state="unreachable"]').count());
      const english = (await visibleTexts(p, 'bdi, input, .url, .code')).filter((s) => latinRe.test(s.replace(/Ollama|ollama-model-downloader|user-agent|redirect|https?:\/\/[\w.:/]+|pdf, epub, apk/g, '')));
      assert.deepEqual(english, [], `${file}: English text in the Persian page`);
      await p.screenshot({ path: path.join(shotDir, `ext-fa-${file.replace('.html', '')}.png`), fullPage: true });
      await p.close();
    }
  });
});

// closedPortURL is an address on loopback where nothing listens.
async function closedPortURL() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return `http://127.0.0.1:${port}/`;
}

function createHash(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}
