// Browser tests of the embedded web UI: the real binary, a local origin and
// Debian's headless Chromium. Run with ./run.sh (or `node --test` here).
// The steps share one server and one page and run in order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startOrigin, contentSHA256 } from './lib/origin.js';
import { startRegistry } from './lib/registry.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import {
  shotDir, desktop, phone, waitFor, apiClient, visibleTexts, ownTextSkip, latinRe, arabicScriptRe, shoot as shootPage, shownRow, openPage } from './lib/page.js';

// Files the tests download from the local origin.
const quick = { name: 'sample-one.bin', size: 3 << 20, rate: 1 << 20 }; // ~3 s
const slow = { name: 'slow.bin', size: 24 << 20, rate: 256 << 10 }; // ~96 s: stays in progress

const persianDigits = /[\u06F0-\u06F9]/;

let tmp;
let origin;
let omd;
let browser;
let page;
const requests = [];
const consoleErrors = [];

// api calls the server from Node (not from the page).
const api = (...args) => apiClient(omd.url)(...args);

async function findJob(name) {
  const { downloads } = await api('GET', '/api/downloads');
  return downloads.find((d) => d.name === name);
}

// row is a download's row in the tab shown now.
const row = (name) => shownRow(page, name);

async function rowState(name) {
  const r = row(name);
  return (await r.count()) ? r.first().getAttribute('data-state') : null;
}

async function progressOf(name) {
  const v = await row(name).first().locator('[role="progressbar"]').getAttribute('aria-valuenow');
  return v === null ? -1 : Number(v);
}

const shoot = (file) => shootPage(page, file);

const nextFrame = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

// fromFa reads a number written with Persian or Latin digits.
const fromFa = (s) => Number(String(s).replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06F0)).replace(/[^0-9]/g, ''));

// clippedSelects lists the speed selectors whose chosen text does not fit.
function clippedSelects() {
  return page.evaluate(() => {
    const ctx = document.createElement('canvas').getContext('2d');
    const out = [];
    for (const sel of document.querySelectorAll('[role="tabpanel"]:not([hidden]) select.job-limit, #limit-rate')) {
      if (!sel.getClientRects().length) continue;
      const cs = getComputedStyle(sel);
      ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
      const text = sel.selectedOptions[0]?.textContent || '';
      const need = ctx.measureText(text).width;
      // The arrow takes about 18 px of the box.
      const room = sel.clientWidth - parseFloat(cs.paddingInlineStart) - parseFloat(cs.paddingInlineEnd) - 18;
      if (need > room) out.push(`${text}: ${Math.round(need)} > ${Math.round(room)}`);
    }
    return out;
  });
}

// screenshotsInAllTabs saves every tab at desktop and phone width, light
// and dark, for a person to look at; and checks that a phone never
// scrolls sideways.
async function screenshotsInAllTabs(lang) {
  for (const [size, vp] of [['desktop', desktop], ['phone', phone]]) {
    for (const scheme of ['light', 'dark']) {
      await page.setViewportSize(vp);
      await page.emulateMedia({ colorScheme: scheme });
      // Every tab on a light desktop; the busiest ones elsewhere.
      const shown = {
        'desktop-light': ['active', 'queue', 'finished', 'library', 'history', 'stats'],
        'desktop-dark': ['active', 'library'],
        'phone-light': ['active', 'queue', 'library', 'history'],
        'phone-dark': ['active'],
      }[`${size}-${scheme}`];
      for (const tab of shown) {
        await page.click(`#tab-${tab}`);
        const filled = { library: '#library-body tr', history: '#history-body tr', stats: '#daily-chart svg' }[tab];
        if (filled) await page.locator(filled).first().waitFor({ timeout: 5000 });
        await nextFrame();
        await shoot(`${lang}-${size}-${scheme}-${tab}.png`);
        if (size === 'phone') {
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `no horizontal scrolling at ${vp.width}px on ${tab} (${overflow}px too wide)`);
        }
      }
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize(desktop);
}

describe('web UI in headless Chromium', { timeout: 150_000 }, () => {
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-'));
    await fs.mkdir(shotDir, { recursive: true });
    origin = await startOrigin();
    const bin = await buildBinary(tmp);
    omd = await startOmd(bin, path.join(tmp, 'out'));
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR', acceptDownloads: true }, consoleErrors);
    page.on('request', (r) => requests.push(r.url()));
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    await origin?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('loads in Persian, right to left, with the embedded font', async () => {
    const res = await page.goto(omd.url);
    assert.equal(res.status(), 200);
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    await page.evaluate(() => document.fonts.ready);
    const info = await page.evaluate(() => ({
      dir: document.documentElement.dir,
      lang: document.documentElement.lang,
      direction: getComputedStyle(document.body).direction,
      panelDirection: getComputedStyle(document.querySelector('#panel-active')).direction,
      font: [...document.fonts].some((f) => f.family.replace(/"/g, '') === 'Vazirmatn' && f.status === 'loaded'),
      bodyFont: getComputedStyle(document.body).fontFamily,
    }));
    assert.deepEqual(
      { dir: info.dir, lang: info.lang, direction: info.direction, panelDirection: info.panelDirection },
      { dir: 'rtl', lang: 'fa', direction: 'rtl', panelDirection: 'rtl' });
    assert.ok(info.font, 'the Vazirmatn font face is loaded');
    assert.match(info.bodyFont, /^"?Vazirmatn/);

    // Every visible text is Persian: no Latin letters or Latin digits outside
    // isolated names (<bdi>), form fields, the licence link and the language
    // switch (which names English in English).
    const latin = (await visibleTexts(page, ownTextSkip)).filter((t) => latinRe.test(t));
    assert.deepEqual(latin, [], 'visible text outside <bdi> must be Persian');
    assert.equal(await page.locator('#lang-switch').textContent(), 'English');
    await shoot('fa-desktop-light-empty.png');
  });

  it('adds a download and shows its progress until it completes', async () => {
    await page.fill('#add-url', origin.url(quick.name, quick.size, quick.rate));
    await page.click('#add-submit');
    await row(quick.name).first().waitFor({ timeout: 5000 });
    await page.locator('.toast', { hasText: 'افزوده شد' }).first().waitFor({ timeout: 5000 });

    // Progress is shown while it runs: a value strictly between 0 and 100.
    const seen = await waitFor('a partial progress value', async () => {
      const v = await progressOf(quick.name);
      return v > 0 && v < 100 ? v : 0;
    });
    assert.ok(seen > 0 && seen < 100);
    const pct = await row(quick.name).first().locator('.job-pct').textContent();
    assert.match(pct, persianDigits);
    assert.match(pct, /٪/);
    const size = await row(quick.name).first().locator('.job-size').textContent();
    assert.match(size, /(کیلوبایت|مگابایت)/);

    // Finished, it leaves Active for the Finished tab.
    await waitFor('gone from Active', async () => (await row(quick.name).count()) === 0, 30_000);
    await page.click('#tab-finished');
    await waitFor('completed state', async () => (await rowState(quick.name)) === 'completed', 5000);
    assert.equal(await progressOf(quick.name), 100);
    assert.equal(await row(quick.name).first().locator('.badge').textContent(), 'تکمیل‌شده');
    await page.locator('.toast', { hasText: 'دانلود تکمیل شد' }).first().waitFor({ timeout: 5000 });
    await page.click('#tab-active');

    const job = await findJob(quick.name);
    const bytes = await fs.readFile(path.join(tmp, 'out', job.path));
    assert.equal(bytes.length, quick.size);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), contentSHA256(quick.size));
  });

  it('pauses, resumes and cancels a throttled download', async () => {
    await page.fill('#add-url', origin.url(slow.name, slow.size, slow.rate));
    await page.click('#add-submit');
    const r = row(slow.name).first();
    await r.waitFor({ timeout: 5000 });
    await waitFor('progress of the slow download', async () => (await progressOf(slow.name)) >= 1);

    // The bar fills in the reading direction: anchored to the right edge.
    const [track, fill] = await Promise.all([
      r.locator('.progress').boundingBox(),
      r.locator('.progress-fill').boundingBox(),
    ]);
    assert.ok(Math.abs(track.x + track.width - (fill.x + fill.width)) <= 1.5, `fill ends at the track's right edge: ${JSON.stringify({ track, fill })}`);
    assert.ok(fill.x > track.x + 1, 'fill starts right of the left edge');

    await r.locator('button[data-action="pause"]').click();
    await waitFor('paused row', async () => (await rowState(slow.name)) === 'paused');
    assert.equal(await r.locator('.badge').textContent(), 'متوقف');
    assert.equal((await findJob(slow.name)).state, 'paused');
    assert.equal(await r.locator('button[data-action="pause"]').count(), 0, 'no pause button on a paused row');
    const pausedAt = (await findJob(slow.name)).bytes_done;
    assert.ok(pausedAt > 0);
    const entries = await fs.readdir(path.join(tmp, 'out'));
    assert.ok(entries.some((e) => e.startsWith(slow.name) && e.includes('.part')), `a .part file is kept: ${entries}`);

    await r.locator('button[data-action="resume"]').click();
    await waitFor('resumed and progressing', async () => {
      const j = await findJob(slow.name);
      return j.state === 'downloading' && j.bytes_done > pausedAt;
    });
    await waitFor('downloading row', async () => (await rowState(slow.name)) === 'downloading');

    await r.locator('button[data-action="cancel"]').click();
    // A canceled download leaves Active for its own tab, Finished.
    await waitFor('gone from Active', async () => (await row(slow.name).count()) === 0);
    assert.equal((await findJob(slow.name)).state, 'canceled');
    await page.click('#tab-finished');
    await waitFor('canceled row', async () => (await rowState(slow.name)) === 'canceled');
    assert.equal(await r.locator('.badge').textContent(), 'لغوشده');
    await waitFor('partial data removed', async () => {
      const names = await fs.readdir(path.join(tmp, 'out'));
      return !names.some((e) => e.startsWith(slow.name));
    }, 5000);
    // A canceled download can be retried or removed from the list.
    assert.equal(await r.locator('button[data-action="retry"]').count(), 1);
    await r.locator('button[data-action="remove"]').click();
    await waitFor('row removed', async () => (await row(slow.name).count()) === 0);
    await page.click('#tab-active');
  });

  it('explains bad input instead of adding it', async () => {
    const errorsBefore = consoleErrors.length;
    await page.fill('#add-url', origin.url('never.bin', 1024));
    await page.fill('#add-sha', 'not-a-digest');
    await page.click('#add-submit');
    await page.locator('#add-error').waitFor({ state: 'visible', timeout: 3000 });
    assert.match(await page.locator('#add-error').textContent(), /SHA-256/);
    await page.fill('#add-sha', '');
    // The server's refusal: a sentence in Persian, its own message folded
    // away in a closed <details>.
    await page.fill('#add-url', 'ftp://example.invalid/file.iso');
    await page.click('#add-submit');
    await waitFor('the server\'s error', async () => (await page.locator('#add-error .err-block').count()) === 1, 5000);
    assert.match(await page.locator('#add-error .err-sentence').textContent(), /[\u0600-\u06FF]/);
    const detail = page.locator('#add-error details');
    assert.equal(await detail.getAttribute('open'), null, 'the detail starts folded');
    assert.match(await detail.locator('.err-raw').textContent(), /ftp/);
    assert.equal(await detail.locator('.err-raw').isVisible(), false);
    assert.equal(await row('never.bin').count(), 0);
    await page.fill('#add-url', '');
    // Chromium logs the deliberate 400 response itself; nothing else may be logged.
    const logged = consoleErrors.splice(errorsBefore);
    assert.ok(logged.every((e) => /status of 400/.test(e)), JSON.stringify(logged));
  });

  it('sets a global speed limit from the header', async () => {
    const choice = String(512 << 10);
    await page.selectOption('#limit-rate', choice);
    await waitFor('limit applied', async () => (await api('GET', '/api/settings')).limit_rate === 512 << 10, 5000);
    assert.match(await page.locator('#limit-rate option:checked').textContent(), /۵۱۲ کیلوبایت\/ثانیه/);
    await page.selectOption('#limit-rate', '0');
    await waitFor('limit removed', async () => (await api('GET', '/api/settings')).limit_rate === 0, 5000);
  });

  it('reorders the queue and acts on a selection', async () => {
    const conc = page.locator('#concurrency');
    await conc.fill('۱');
    await conc.press('Enter');
    await waitFor('concurrency 1', async () => (await api('GET', '/api/settings')).concurrency === 1, 5000);
    const names = ['queue-a.bin', 'queue-b.bin', 'queue-c.bin'];
    // Several lines are several downloads.
    await page.fill('#add-url', names.map((n) => origin.url(n, 8 << 20, 128 << 10)).join('\n'));
    await page.click('#add-submit');
    await waitFor('one running, two queued', async () => {
      const states = await Promise.all(names.map(async (n) => (await findJob(n))?.state));
      return states.join() === 'downloading,queued,queued';
    });
    await page.click('#tab-queue');
    const order = () => page.locator('#list-queue .job-name').allTextContents();
    await waitFor('queue rows', async () => (await order()).join() === 'queue-b.bin,queue-c.bin');
    await row('queue-c.bin').locator('button[data-action="top"]').click();
    await waitFor('queue-c moved first', async () => (await order()).join() === 'queue-c.bin,queue-b.bin');
    const [b, c] = await Promise.all([findJob('queue-b.bin'), findJob('queue-c.bin')]);
    assert.ok(c.position < b.position, `positions: c ${c.position}, b ${b.position}`);

    await page.check('#select-all-queue');
    assert.match(await page.locator('#bulk-count-queue').textContent(), /۲ مورد/);
    await page.click('#bulk-queue [data-bulk="cancel"]');
    await page.locator('#confirm[open]').waitFor();
    await page.click('#confirm-ok');
    await waitFor('queued ones canceled', async () => (await findJob('queue-b.bin')).state === 'canceled' && (await findJob('queue-c.bin')).state === 'canceled');

    await page.click('#tab-active');
    await row('queue-a.bin').locator('.row-check').check();
    await page.click('#bulk-active [data-bulk="pause"]');
    await waitFor('queue-a paused', async () => (await findJob('queue-a.bin')).state === 'paused');
    await row('queue-a.bin').locator('.row-check').uncheck();
    // Its own speed limit, from the selector under the speed.
    await row('queue-a.bin').locator('select.job-limit').focus(); // its choices come when a person reaches for it
    await row('queue-a.bin').locator('select.job-limit').selectOption(String(256 << 10));
    await waitFor('per-download limit applied', async () => (await findJob('queue-a.bin')).limit_rate === 256 << 10, 5000);
    assert.match(await row('queue-a.bin').locator('select.job-limit option:checked').textContent(), /۲۵۶ کیلوبایت\/ثانیه/);
    await api('POST', `/api/download/${encodeURIComponent((await findJob('queue-a.bin')).id)}/cancel`);
    await page.click('#tab-finished');
    await waitFor('finished rows', async () => (await row('queue-b.bin').count()) === 1 && (await row(quick.name).count()) === 1);
    await page.click('#clear-finished');
    await waitFor('finished rows cleared', async () => (await row('queue-b.bin').count()) === 0 && (await row(quick.name).count()) === 0);
    await page.click('#tab-active');
    await api('POST', '/api/settings', { concurrency: '4' });
  });

  it('lists the finished file in the Library, downloadable from the page', async () => {
    await page.click('#tab-library');
    const tr = page.locator('#library-body tr', { hasText: quick.name });
    await tr.first().waitFor({ timeout: 5000 });
    assert.match(await tr.first().textContent(), persianDigits);
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 10_000 }),
      tr.first().locator('a[href^="/api/library/file/"]').click(),
    ]);
    const saved = await fs.readFile(await download.path());
    assert.equal(crypto.createHash('sha256').update(saved).digest('hex'), contentSHA256(quick.size));
    await shoot('fa-desktop-light-library-files.png');
  });

  it('records the download in History, with search and status filter', async () => {
    await page.click('#tab-history');
    const done = page.locator('#history-body tr', { hasText: quick.name });
    await done.first().waitFor({ timeout: 5000 });
    assert.equal(await done.first().locator('.badge').textContent(), 'تکمیل‌شده');
    const canceled = page.locator('#history-body tr', { hasText: slow.name });
    await canceled.first().waitFor({ timeout: 5000 });
    assert.equal(await canceled.first().locator('.badge').textContent(), 'لغوشده');

    await page.fill('#history-search', 'sample-one');
    await waitFor('search applied', async () => (await page.locator('#history-body tr', { hasText: slow.name }).count()) === 0);
    assert.equal(await done.count(), 1);
    await page.fill('#history-search', '');
    await page.selectOption('#history-status', 'canceled');
    await waitFor('filter applied', async () => (await done.count()) === 0 && (await canceled.count()) === 1);
    await page.selectOption('#history-status', '');
    await done.first().waitFor({ timeout: 5000 });
    assert.match(await page.locator('#history-page').textContent(), persianDigits);
    await shoot('fa-desktop-light-history-search.png');
  });

  it('shows the download in the statistics', async () => {
    await page.click('#tab-stats');
    await page.locator('#daily-chart svg').waitFor({ timeout: 5000 });
    const stats = await api('GET', '/api/statistics');
    assert.ok(stats.total_files >= 2 && stats.completed >= 1, JSON.stringify(stats));
    const cards = await page.locator('#stat-cards .value').allTextContents();
    const fa = (n) => new Intl.NumberFormat('fa-IR').format(n);
    assert.equal(cards[0], fa(stats.total_files));
    assert.equal(cards[2], fa(stats.completed));
    assert.match(await page.locator('#stat-domains').textContent(), /127\.0\.0\.1/);
    const bars = await page.locator('#daily-chart rect').evaluateAll((rs) => rs.map((r) => ({ bytes: Number(r.dataset.bytes), cls: r.getAttribute('class') })));
    assert.equal(bars.length, 30);
    assert.ok(bars.some((b) => b.cls === 'bar' && b.bytes >= quick.size), JSON.stringify(bars.slice(-3)));
    await shoot('fa-desktop-light-stats-first.png');
  });

  it('moves between tabs with the keyboard', async () => {
    await page.click('#tab-active');
    await page.focus('#tab-active');
    const selectedTab = () => page.evaluate(() => [document.querySelector('[role="tab"][aria-selected="true"]').id, document.activeElement.id]);
    await page.keyboard.press('ArrowLeft'); // RTL: the next tab is to the left
    assert.deepEqual(await selectedTab(), ['tab-queue', 'tab-queue']);
    await page.keyboard.press('End');
    assert.deepEqual(await selectedTab(), ['tab-stats', 'tab-stats']);
    await page.keyboard.press('ArrowRight');
    assert.deepEqual(await selectedTab(), ['tab-history', 'tab-history']);
    await page.keyboard.press('Home');
    assert.deepEqual(await selectedTab(), ['tab-active', 'tab-active']);
    assert.equal(await page.locator('#panel-active').isVisible(), true);
    assert.equal(await page.locator('#panel-stats').isVisible(), false);
    // Icon-only buttons all have a name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, a')]
      .filter((b) => b.getClientRects().length && !(b.getAttribute('aria-label') || b.textContent.trim()))
      .map((b) => b.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
  });

  it('shows running, queued, paused and failed in Active, with the header agreeing', async () => {
    // Something in each state: running, paused, failed, completed, queued.
    await api('POST', '/api/settings', { concurrency: '2' });
    await api('POST', '/api/download/add', {
      url: [
        origin.url('ubuntu-24.04-desktop-amd64.iso', 64 << 20, 512 << 10),
        origin.url('گزارش سالانه ۱۴۰۳.pdf', 64 << 20, 256 << 10),
        origin.url('queued-dataset.tar.gz', 8 << 20, 0),
      ].join('\n'),
    });
    await api('POST', '/api/download/add', { url: `${origin.base}/missing/broken-link.zip`, retries: '0' });
    const paused = await waitFor('the second download running', async () => {
      const j = await findJob('گزارش سالانه ۱۴۰۳.pdf');
      return j && j.state === 'downloading' && j.bytes_done > 0 ? j : null;
    });
    await api('POST', `/api/download/${encodeURIComponent(paused.id)}/pause`);
    await waitFor('the broken link to fail', async () => (await findJob('broken-link.zip'))?.state === 'failed', 20_000);
    // Then more than the free slot takes, so that the Queue tab has rows.
    await api('POST', '/api/download/add', {
      url: ['weights-q4_K_M.gguf', 'dataset-part2.zip', 'backup-1403.tar', 'notes.txt', 'clip.mp4'].map((n) => origin.url(n, 64 << 20, 128 << 10)).join('\n'),
    });
    await waitFor('four queued', async () => (await api('GET', '/api/downloads')).downloads.filter((d) => d.state === 'queued').length === 4);
    await page.click('#tab-active');
    await waitFor('rows rendered', async () => (await rowState('broken-link.zip')) === 'failed');

    // The failure in words; the server's text folded away.
    const broken = row('broken-link.zip').first();
    assert.equal(await broken.locator('.job-error details').getAttribute('open'), null);
    assert.equal(await broken.locator('.err-raw').isVisible(), false);

    // Active holds running, queued, paused and failed; the completed one is
    // under Finished. The header's figures add up to the Active tab's count.
    await waitFor('header and tab agree', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      const want = downloads.filter((d) => !['completed', 'canceled'].includes(d.state)).length;
      const states = await page.locator('#list-active li.job').evaluateAll((ls) => ls.map((l) => l.dataset.state));
      const tabCount = fromFa(await page.locator('#count-active').textContent());
      const header = await page.locator('#overall-counts .oc').evaluateAll((els) => els.map((e) => Number(e.dataset.n)));
      const sum = header.reduce((a, b) => a + b, 0);
      return want === tabCount && sum === tabCount && states.length === tabCount
        && ['downloading', 'queued', 'paused', 'failed'].every((st) => states.includes(st))
        && !states.includes('completed') && !states.includes('canceled');
    });
    const running = await page.locator('#overall-counts .oc-running').textContent();
    assert.match(running, /^[۰-۹]+ در جریان$/);
    const runningNow = (await api('GET', '/api/downloads')).downloads.filter((d) => d.state === 'downloading').length;
    assert.ok(Math.abs(fromFa(running) - runningNow) <= 1, `${running} vs ${runningNow}`);
    // The overall progress: bytes, speed, time left for everything.
    assert.match(await page.locator('#overall-figures').textContent(), /از .*مگابایت.*\/ثانیه.*مانده/);
    // File-type icons follow the extension.
    assert.equal(await row('ubuntu-24.04-desktop-amd64.iso').first().locator('.job-kind').getAttribute('data-icon'), 'disc');
    assert.equal(await row('گزارش سالانه ۱۴۰۳.pdf').first().locator('.job-kind').getAttribute('data-icon'), 'doc');
    assert.equal(await row('broken-link.zip').first().locator('.job-kind').getAttribute('data-icon'), 'archive');

    // The per-download speed selector shows its whole text.
    await row('ubuntu-24.04-desktop-amd64.iso').first().locator('select.job-limit').click();
    await page.keyboard.press('Escape');
    await row('ubuntu-24.04-desktop-amd64.iso').first().locator('select.job-limit').selectOption(String(50 << 20));
    await waitFor('a long limit shown', async () => (await findJob('ubuntu-24.04-desktop-amd64.iso')).limit_rate === 50 << 20, 5000);
    for (const vp of [desktop, phone]) {
      await page.setViewportSize(vp);
      await nextFrame();
      assert.deepEqual(await clippedSelects(), [], `selector text cut at ${vp.width}px`);
    }
    await page.setViewportSize(desktop);
  });

  it('looks right in Persian at desktop and phone width, light and dark', async () => {
    await screenshotsInAllTabs('fa');
    // On a phone the add form is folded: the list starts on the first screen.
    await page.setViewportSize(phone);
    await page.click('#tab-active');
    assert.equal(await page.locator('#add-form').isVisible(), false);
    assert.equal(await page.locator('#add-toggle').getAttribute('aria-expanded'), 'false');
    const firstRowTop = await page.locator('#list-active li.job').first().evaluate((e) => e.getBoundingClientRect().top);
    assert.ok(firstRowTop < phone.height * 0.6, `the first row starts at ${firstRowTop}px of ${phone.height}`);
    await page.click('#add-toggle');
    assert.equal(await page.locator('#add-form').isVisible(), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'add-url');
    await page.click('#add-toggle');
    await page.setViewportSize({ width: 360, height: 740 });
    for (const tab of ['active', 'library']) {
      await page.click(`#tab-${tab}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling at 360px on ${tab} (${overflow}px too wide)`);
    }
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(dark, 'rgb(243, 245, 248)', 'dark mode changes the background');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize(desktop);
  });

  it('switches to English from the header, remembered, and looks right', async () => {
    await page.click('#tab-active');
    await page.click('#lang-switch');
    await waitFor('English page', async () => (await page.evaluate(() => [document.documentElement.lang, document.documentElement.dir].join())) === 'en,ltr');
    assert.equal(await page.locator('#lang-switch').textContent(), 'فارسی');
    assert.match(await page.locator('#tab-active').textContent(), /^Active \d+$/);
    await page.reload();
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en', 'the choice is remembered');
    await waitFor('rows', async () => (await rowState('broken-link.zip')) === 'failed');
    // Nothing Persian outside isolated names and the switch; Latin digits.
    const persian = (await visibleTexts(page, ownTextSkip)).filter((t) => arabicScriptRe.test(t));
    assert.deepEqual(persian, [], 'visible text of the English page has no Persian');
    assert.match(await page.locator('#overall-counts .oc-running').textContent(), /^\d+ running$/);
    await screenshotsInAllTabs('en');
    await page.setViewportSize({ width: 360, height: 740 });
    await page.click('#tab-active');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 360px in English (${overflow}px too wide)`);
    await page.setViewportSize(desktop);
    // Back to Persian for the steps that follow.
    await page.click('#lang-switch');
    await waitFor('Persian page', async () => (await page.evaluate(() => document.documentElement.lang)) === 'fa');

    await page.click('#cancel-all');
    await page.click('#confirm-ok');
    await waitFor('everything canceled', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      return downloads.every((d) => ['completed', 'failed', 'canceled'].includes(d.state));
    });
  });

  it('deletes from History and from the Library', async () => {
    await page.click('#tab-history');
    const canceled = page.locator('#history-body tr', { hasText: slow.name });
    await canceled.first().waitFor({ timeout: 5000 });
    await canceled.first().locator('button[data-delete]').click();
    await waitFor('history record deleted', async () => (await canceled.count()) === 0, 5000);
    const { records } = await api('GET', '/api/history?limit=100');
    assert.ok(!records.some((r) => r.file_name === slow.name), 'gone from the API too');

    await page.click('#tab-library');
    const tr = page.locator('#library-body tr', { hasText: 'queued-dataset.tar.gz' });
    await tr.first().waitFor({ timeout: 5000 });
    const file = path.join(tmp, 'out', (await tr.first().getAttribute('data-path')));
    await fs.access(file);
    await tr.first().locator('button[data-delete]').click();
    await page.locator('#confirm[open]').waitFor();
    await page.click('#confirm-ok');
    await waitFor('library row gone', async () => (await tr.count()) === 0, 5000);
    await assert.rejects(fs.access(file), 'the file is deleted from disk');
  });

  it('follows the event stream only while the page is visible', async () => {
    const streams = () => requests.filter((u) => /\/api\/(events|downloads)/.test(u));
    const setVisibility = (state) => page.evaluate((st) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => st });
      document.dispatchEvent(new Event('visibilitychange'));
    }, state);
    assert.ok(requests.some((u) => /\/api\/events/.test(u)), 'the page follows /api/events');
    await setVisibility('hidden');
    await page.waitForTimeout(300); // a request already in flight may finish
    const hidden = streams().length;
    await page.waitForTimeout(1500);
    assert.equal(streams().length, hidden, 'nothing is fetched while hidden');
    await setVisibility('visible');
    await waitFor('the stream again once visible', async () => streams().length > hidden, 3000);
    const again = streams().slice(hidden);
    assert.ok(again.some((u) => /\/api\/events\?since=\d+/.test(u)) || again.some((u) => /\/api\/events$/.test(u)), JSON.stringify(again));
  });

  it('polls ?since= once a second when the server refuses the event stream, only while visible', async () => {
    const context = page.context();
    const other = await context.newPage();
    const polls = [];
    other.on('request', (r) => { if (/\/api\/downloads(\?|$)/.test(r.url())) polls.push(r.url()); });
    // Past its cap on streams the server answers 503.
    await other.route('**/api/events*', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"too many event streams","error_code":""}' }));
    await other.goto(omd.url);
    await waitFor('polling', () => polls.length >= 3, 8000);
    const { rev } = await api('GET', '/api/downloads');
    if (typeof rev === 'number') assert.ok(polls.slice(1).every((u) => /since=\d+/.test(u)), `polls ask for changes only: ${polls}`);
    await waitFor('rows from polling', async () => (await other.locator('#count-active').textContent()) !== '');
    await other.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await other.waitForTimeout(300);
    const n = polls.length;
    await other.waitForTimeout(1500);
    assert.equal(polls.length, n, 'no polling while hidden');
    await other.close();
  });

  it('takes an access token out of the address bar', async () => {
    await page.goto(`${omd.url}?token=not-kept-in-history#history`);
    await page.locator('#tab-history[aria-selected="true"]').waitFor();
    const url = new URL(page.url());
    assert.equal(url.searchParams.has('token'), false, page.url());
    assert.equal(url.hash, '#history');
    await page.click('#tab-active');
  });

  it('made no request to any other host and logged no console error', () => {
    const own = new URL(omd.url).origin;
    const foreign = requests.filter((u) => !u.startsWith(`${own}/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(foreign, []);
    assert.ok(requests.some((u) => u.startsWith(`${own}/api/events`)), 'the page follows the event stream');
    assert.ok(requests.some((u) => u.includes('/fonts/Vazirmatn')), 'the font comes from the server');
    assert.deepEqual(consoleErrors, []);
  });

  it('shows a banner when the server is unreachable', async () => {
    assert.equal(await page.locator('#offline').isVisible(), false);
    await omd.stop();
    await page.locator('#offline').waitFor({ state: 'visible', timeout: 5000 });
    assert.match(await page.locator('#offline').textContent(), /ارتباط با سرور برقرار نیست/);
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'fa');
  });
});

// The Library's model actions against a second server whose registry is a
// tiny local one and whose Ollama models folder (OLLAMA_MODELS) is a temp
// folder: nothing here touches ~/.ollama.
describe('Library: install into Ollama and share models', { timeout: 120_000 }, () => {
  let tmp2;
  let registry;
  let server;
  let modelsDir;
  let browser2;
  let page2;
  const errors2 = [];

  async function api2(method, p) {
    const res = await fetch(new URL(p, server.url));
    assert.ok(res.ok, `${method} ${p}: ${res.status}`);
    return res.json();
  }

  async function latinOutsideBdi(selector) {
    return page2.evaluate((sel) => {
      const out = [];
      const walker = document.createTreeWalker(document.querySelector(sel), NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const el = n.parentElement;
        if (!el || el.closest('bdi, svg')) continue;
        if (!el.getClientRects().length) continue;
        if (/[A-Za-z0-9]/.test(n.textContent)) out.push(n.textContent.trim());
      }
      return out;
    }, selector);
  }

  before(async () => {
    tmp2 = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-lib-'));
    await fs.mkdir(shotDir, { recursive: true });
    registry = await startRegistry();
    modelsDir = path.join(tmp2, 'ollama-models');
    const bin = await buildBinary(tmp2);
    server = await startOmd(bin, path.join(tmp2, 'out'), { args: ['-registry', registry.base], env: { OLLAMA_MODELS: modelsDir } });
    browser2 = await launchBrowser();
    page2 = await openPage(browser2, { viewport: desktop, locale: 'fa-IR' }, errors2);
  });

  after(async () => {
    await browser2?.close();
    await server?.stop();
    await registry?.close();
    if (tmp2) await fs.rm(tmp2, { recursive: true, force: true });
  });

  it('pulls a model from the add box and installs it from the Library into OLLAMA_MODELS', async () => {
    await page2.goto(server.url);
    // Typed, the model is shown before it is added: its size first.
    await page2.fill('#add-url', 'tiny:1');
    await page2.locator('#model-preview .mp-size').waitFor({ timeout: 10_000 });
    const title = await page2.locator('#model-preview .mp-title > *').allTextContents();
    assert.match(title[0], /^[۰-۹٫]+ کیلوبایت$/, `size first: ${title}`);
    assert.ok(title[1].endsWith('tiny:1'), `then the name: ${title}`);
    await shoot2('desktop-model-preview.png');
    await page2.fill('#add-url', 'nosuch:1');
    await page2.locator('#model-preview.err .err-sentence').waitFor({ timeout: 10_000 });
    assert.equal(await page2.locator('#model-preview .err-sentence').textContent(), 'مدلی با این نام و برچسب در مخزن نیست.');
    await page2.fill('#add-url', 'tiny:1');
    await page2.click('#add-submit');
    await waitFor('the model zip in the library', async () => {
      const { files } = await api2('GET', '/api/library');
      return files.find((f) => f.kind === 'model');
    }, 30_000);
    // The finished model's row: name:tag, and its layers, folded.
    await page2.click('#tab-finished');
    const modelRow = page2.locator('#list-finished li.job').first();
    await modelRow.waitFor({ timeout: 5000 });
    assert.match(await modelRow.locator('.job-name').textContent(), /tiny:1$/);
    const job = (await api2('GET', '/api/downloads')).downloads.find((d) => d.kind === 'model');
    assert.ok(job.layers && job.layers.length >= 2, JSON.stringify(job.layers));
    assert.equal(await modelRow.locator('.job-layers').getAttribute('open'), null);
    assert.equal(await modelRow.locator('.job-layers summary').textContent(), `${new Intl.NumberFormat('fa-IR').format(job.layers.length)} لایه`);
    await modelRow.locator('.job-layers summary').click();
    assert.equal(await modelRow.locator('.layer-list li').count(), job.layers.length);
    assert.match(await modelRow.locator('.layer-list').textContent(), /وزن‌ها/);
    await shoot2('desktop-model-row.png');
    await page2.click('#tab-library');
    // Models as `ollama list` shows them.
    const modelLine = page2.locator('#models-body tr').first();
    await modelLine.waitFor({ timeout: 5000 });
    assert.match(await modelLine.textContent(), /tiny:1/);
    const install = page2.locator('#library-body tr button[data-install]');
    await install.first().waitFor({ timeout: 5000 });
    assert.equal(await install.count(), 1);
    assert.match(await install.first().textContent(), /نصب در Ollama/);
    assert.deepEqual(await latinOutsideBdi('#panel-library'), [], 'Library text outside <bdi> must be Persian');

    await install.first().click();
    const ok = page2.locator('.toast.ok', { hasText: 'مدل نصب شد' });
    await ok.first().waitFor({ timeout: 10_000 });
    assert.ok((await ok.first().textContent()).includes(modelsDir), 'the toast says where the model went');
    const host = new URL(registry.base).host;
    const manifest = await fs.readFile(path.join(modelsDir, 'manifests', host, 'library', 'tiny', '1'));
    assert.ok(manifest.equals(registry.manifest), 'the installed manifest is the registry\'s');
    const blobs = await fs.readdir(path.join(modelsDir, 'blobs'));
    assert.equal(blobs.length, 3, `config and two layers, got ${blobs}`);

    // Installing again is a no-op; the button answers with success again.
    await page2.locator('.toast .icon-btn').first().click();
    await install.first().click();
    await waitFor('second install answered', async () => (await page2.locator('.toast.ok', { hasText: 'مدل نصب شد' }).count()) >= 1, 10_000);
    await shoot2('desktop-library-models.png');
    await page2.setViewportSize(phone);
    await shoot2('phone-library-models.png');
    await page2.setViewportSize(desktop);
  });

  it('starts the model mirror from the Library and shows its address and pull command', async () => {
    assert.equal(await page2.locator('#mirror-info').isVisible(), false);
    await page2.click('#mirror-toggle');
    await page2.locator('#mirror-info').waitFor({ state: 'visible', timeout: 5000 });
    const address = await page2.locator('#mirror-address').textContent();
    assert.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
    const command = await page2.locator('#mirror-command').textContent();
    assert.equal(command, `ollama pull --insecure ${address.slice('http://'.length)}/library/<model>:<tag>`);
    assert.equal(await page2.locator('#mirror-command').getAttribute('dir'), 'ltr');
    const v2 = await fetch(`${address}/v2/library/tiny/manifests/1`);
    assert.equal(v2.status, 200);
    assert.ok(Buffer.from(await v2.arrayBuffer()).equals(registry.manifest), 'the mirror serves the pulled manifest');
    assert.equal(await page2.locator('#mirror-toggle').getAttribute('aria-pressed'), 'true');
    // Its figures, followed while the Library is shown.
    await page2.locator('#mirror-stats [data-stat="served"] dd').waitFor({ timeout: 5000 });
    const served = () => page2.locator('#mirror-stats [data-stat="served"] dd').textContent();
    const before = await served();
    await fetch(`${address}/v2/library/tiny/manifests/1`);
    await waitFor('the served bytes to grow on the page', async () => (await served()) !== before, 8000);
    assert.deepEqual(await latinOutsideBdi('#panel-library'), [], 'Library text outside <bdi> must be Persian');
    await shoot2('desktop-library-mirror.png');
    await page2.setViewportSize(phone);
    await shoot2('phone-library-mirror.png');
    await page2.setViewportSize(desktop);

    await page2.click('#mirror-toggle');
    await page2.locator('#mirror-info').waitFor({ state: 'hidden', timeout: 5000 });
    assert.equal((await api2('GET', '/api/mirror')).running, false);
    await assert.rejects(fetch(`${address}/v2/`), 'the mirror stopped listening');
    // The model preview's deliberate 404 (nosuch:1) is logged by Chromium itself.
    assert.deepEqual(errors2.filter((e) => !/status of 404/.test(e)), []);
  });

  const shoot2 = (file) => shootPage(page2, `fa-${file}`);
});
