// The page's details, as a review found them wanting (issue 25, "The page
// and the command line"): names on the row's side whatever their script,
// the header's progress line whole, toasts one at a time and off the row
// buttons, one toast per add, the Persian checksum placeholder, a model
// preview for host:port names, the add box that grows and counts, the tab
// strip on a phone, one name and one size per model, one word for
// "completed", tar.gz, no "0 s", a row paused by the command line, the
// Finished rows' buttons and the queue's icons, the English settings'
// words. One server (with a local registry), one origin, one browser; the
// steps run in order. Layout is checked with element geometry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startOrigin } from './lib/origin.js';
import { startRegistry } from './lib/registry.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import { shotDir, desktop, phone, waitFor, apiClient, shoot as shootPage, shownRow, openPage } from './lib/page.js';
import fa from '../templates/i18n/fa.js';
import en from '../templates/i18n/en.js';

const indexHTML = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'templates', 'index.html');
const plain = (s) => s.replace(/\{\{(.*?)\}\}/g, '$1').replace(/\[\[(.*?)\]\]/g, '$1');

describe('the page\'s details (issue 25)', { timeout: 240_000 }, () => {
  let tmp;
  let out;
  let bin;
  let origin;
  let registry;
  let omd;
  let browser;
  let page;
  let api;
  const consoleErrors = [];

  const row = (name) => shownRow(page, name);
  const shoot = (file) => shootPage(page, file);
  const nextFrame = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const findJob = async (name) => (await api('GET', '/api/downloads')).downloads.find((d) => d.name === name);
  const setLang = async (code) => {
    if (await page.evaluate(() => document.documentElement.lang) === code) return;
    await page.click('#lang-switch');
    await waitFor(`the ${code} page`, async () => (await page.evaluate(() => document.documentElement.lang)) === code);
  };

  // toastsSeen counts the toasts the page shows from now on (a toast
  // updated in place is one toast), and the text of the last one.
  const watchToasts = () => page.evaluate(() => {
    document.getElementById('toasts').replaceChildren();
    window.__toasts = [];
    const box = document.getElementById('toasts');
    if (!window.__toastObserver) {
      window.__toastObserver = new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) if (n.classList && n.classList.contains('toast')) window.__toasts.push(n);
        }
      });
      window.__toastObserver.observe(box, { childList: true });
    }
  });
  const toastsSeen = () => page.evaluate(() => ({ n: window.__toasts.length, last: window.__toasts.at(-1)?.querySelector('.toast-title')?.textContent || '' }));

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-details-'));
    out = path.join(tmp, 'out');
    await fs.mkdir(shotDir, { recursive: true });
    origin = await startOrigin();
    registry = await startRegistry();
    bin = await buildBinary(tmp);
    omd = await startOmd(bin, out, { args: ['-registry', registry.base], env: { OLLAMA_MODELS: path.join(tmp, 'ollama-models') } });
    api = apiClient(omd.url);
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR' }, consoleErrors);
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    await origin?.close();
    await registry?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('puts names on the row\'s side whatever their script, in Persian and in English', async () => {
    // Two that finish (History, Statistics) and three that stay (Active).
    const done = ['latin-report-2024.pdf', 'گزارش سالانه ۱۴۰۳.pdf'];
    await api('POST', '/api/download/add', { url: done.map((n) => origin.url(n, 64 << 10, 0)).join('\n') });
    await waitFor('both finished', async () => (await Promise.all(done.map(findJob))).every((j) => j && j.state === 'completed'));
    await api('POST', '/api/settings', { concurrency: '1' });
    const stay = ['a-long-latin-name-ubuntu-24.04-desktop-amd64.iso', 'فیلم آموزشی.mp4', 'src-1.0.tar.gz'];
    await api('POST', '/api/download/add', { url: stay.map((n) => origin.url(n, 64 << 20, 128 << 10)).join('\n') });
    await page.goto(omd.url);
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    await waitFor('rows', async () => (await page.locator('#list-active li.job').count()) === 3);

    // gaps: how far each name's text is from its box's side (the row's side:
    // right in Persian, left in English), for every name on show.
    const gaps = (selector) => page.evaluate((sel) => {
      const rtl = document.documentElement.dir === 'rtl';
      return [...document.querySelectorAll(sel)].filter((el) => el.getClientRects().length && el.textContent.trim()).map((el) => {
        const r = document.createRange();
        r.selectNodeContents(el);
        const text = r.getBoundingClientRect();
        const box = el.getBoundingClientRect();
        // A name longer than its box fills it (and ends in "…").
        if (el.scrollWidth > el.clientWidth + 1) return { name: el.textContent, gap: 0 };
        return { name: el.textContent, gap: Math.round(rtl ? box.right - text.right : text.left - box.left) };
      });
    }, selector);
    const check = async (where, selector) => {
      const g = await gaps(selector);
      assert.ok(g.length > 0, `${where}: names found`);
      const off = g.filter((x) => Math.abs(x.gap) > 1);
      assert.deepEqual(off, [], `${where}: every name at the row's side`);
    };
    for (const lang of ['fa', 'en']) {
      await setLang(lang);
      await page.click('#tab-active');
      await check(`${lang} Active`, '#list-active .job-name, #list-active .job-source');
      await page.click('#tab-history');
      await page.locator('#history-body tr').nth(1).waitFor();
      await check(`${lang} History`, '#history-body .job-name');
      await page.click('#tab-stats');
      await page.locator('#stat-domains li .bar-label').first().waitFor();
      await check(`${lang} Statistics`, '#stat-domains .bar-label, #stat-types .bar-label');
      await page.click('#tab-active');
      await shoot(`${lang}-desktop-light-names.png`);
    }
    await setLang('fa');
  });

  it('shows the header\'s progress line whole, in Persian at 1366 px and on a phone', async () => {
    // One running, two queued of unknown size: "at least … left", the longest.
    await waitFor('a time left', async () => /مانده/.test(await page.locator('#overall-figures').textContent()));
    for (const vp of [desktop, phone, { width: 360, height: 740 }]) {
      await page.setViewportSize(vp);
      await nextFrame();
      const m = await page.evaluate(() => {
        const el = document.getElementById('overall-figures');
        const r = document.createRange();
        r.selectNodeContents(el);
        const text = r.getBoundingClientRect();
        const box = el.getBoundingClientRect();
        return {
          text: el.textContent, overflow: el.scrollWidth - el.clientWidth,
          inside: text.left >= box.left - 1 && text.right <= box.right + 1 && text.left >= 0 && text.right <= window.innerWidth,
          cut: [...el.querySelectorAll('*')].some((c) => c.scrollWidth > c.clientWidth + 1 && getComputedStyle(c).overflow === 'hidden'),
        };
      });
      assert.ok(m.overflow <= 0 && m.inside && !m.cut, `the progress line is cut at ${vp.width}px: ${JSON.stringify(m)}`);
      assert.match(m.text, /دست‌کم .* مانده$/, `the time left is said whole at ${vp.width}px`);
    }
    await page.setViewportSize(phone);
    await shoot('fa-phone-light-header.png');
    await page.setViewportSize(desktop);
  });

  it('shows toasts one at a time, never over a row\'s buttons', async () => {
    // Controls of the rows in view, and the toast, as rectangles.
    const overlaps = () => page.evaluate(() => {
      const t = document.querySelector('#toasts .toast');
      if (!t) return { toast: false };
      const a = t.getBoundingClientRect();
      const hit = [];
      for (const el of document.querySelectorAll('[role="tabpanel"]:not([hidden]) li.job :is(button, a, input, select)')) {
        const b = el.getBoundingClientRect();
        if (!b.width || !b.height) continue;
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) hit.push(el.dataset.action || el.className);
      }
      return { toast: true, hit, shown: document.querySelectorAll('#toasts .toast').length };
    });
    // Enough rows to reach the bottom of the screen.
    await api('POST', '/api/download/add', { url: Array.from({ length: 8 }, (_, i) => origin.url(`fill-${i}.bin`, 64 << 20, 64 << 10)).join('\n') });
    for (const vp of [desktop, { width: 1024, height: 768 }, phone]) {
      await page.setViewportSize(vp);
      await page.click('#tab-active');
      await waitFor('rows', async () => (await page.locator('#list-active li.job').count()) >= (vp === phone ? 3 : 6));
      if (vp !== phone) await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
      else await page.evaluate(() => window.scrollTo(0, 0));
      await nextFrame();
      // Three changes in a row: three toasts asked for.
      for (const rate of [String(1 << 20), String(2 << 20), '0']) {
        await page.selectOption('#limit-rate', rate);
        await waitFor('the limit saved', async () => String((await api('GET', '/api/settings')).limit_rate) === String(Number(rate)));
      }
      await page.locator('#toasts .toast').first().waitFor();
      await nextFrame();
      const o = await overlaps();
      assert.equal(o.shown, 1, `one toast at a time at ${vp.width}px`);
      assert.deepEqual(o.hit, [], `the toast covers row controls at ${vp.width}px`);
      if (vp === desktop) await shoot('fa-desktop-light-toast.png');
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.setViewportSize(desktop);
  });

  it('gives one add one toast, and says "already downloaded" for a file added again', async () => {
    // The slow downloads of the steps above wait, paused, from here on.
    await api('POST', '/api/downloads/pause-all');
    await api('POST', '/api/settings', { concurrency: '4' });
    await watchToasts();
    // The answer to the add comes late, after the event stream has told of
    // the new download: it is still this page's add, said once.
    await page.route('**/api/download/add', async (route) => {
      const res = await route.fetch();
      await new Promise((r) => setTimeout(r, 800));
      await route.fulfill({ response: res });
    });
    await page.fill('#add-url', origin.url('once.bin', 32 << 10, 0));
    await page.click('#add-submit');
    await waitFor('once.bin completed', async () => (await findJob('once.bin'))?.state === 'completed');
    await page.waitForTimeout(1200); // the late answer, and any toast it brings
    let seen = await toastsSeen();
    assert.equal(seen.n, 1, `one add, one toast: ${JSON.stringify(seen)}`);
    await page.unroute('**/api/download/add');

    // The same file again: this folder has it, unchanged upstream.
    await watchToasts();
    await page.fill('#add-url', origin.url('once.bin', 32 << 10, 0));
    await page.click('#add-submit');
    await waitFor('the second add ended', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      return downloads.filter((d) => d.name === 'once.bin' && d.outcome === 'unchanged').length === 1;
    });
    await waitFor('its toast', async () => (await toastsSeen()).last === fa.strings['toast.alreadyHave']);
    await page.waitForTimeout(500);
    seen = await toastsSeen();
    assert.deepEqual(seen, { n: 1, last: fa.strings['toast.alreadyHave'] }, 'one toast, and it says the file was already here');
  });

  it('writes the Persian checksum placeholder right to left', async () => {
    for (const lang of ['fa', 'en']) {
      await setLang(lang);
      const fields = await page.evaluate(() => [...document.querySelectorAll('input[placeholder], textarea[placeholder]')]
        .filter((el) => el.getClientRects().length && el.value === '')
        .map((el) => {
          const ph = getComputedStyle(el, '::placeholder');
          const strong = /[A-Za-z\u0600-\u06FF]/.exec(el.placeholder);
          const rtlText = !!strong && /[\u0600-\u06FF]/.test(strong[0]);
          // The placeholder's paragraph: its own direction (plaintext), or the field's.
          const dir = ph.unicodeBidi === 'plaintext' ? (rtlText ? 'rtl' : 'ltr') : ph.direction;
          return { id: el.id, placeholder: el.placeholder, dir, want: rtlText ? 'rtl' : 'ltr' };
        }));
      assert.ok(fields.some((f) => f.id === 'add-sha'), 'the checksum field is on show');
      const wrong = fields.filter((f) => f.dir !== f.want);
      assert.deepEqual(wrong, [], `${lang}: placeholders in their own direction`);
    }
    await setLang('fa');
    await page.locator('#add-sha').screenshot({ path: path.join(shotDir, 'fa-desktop-light-sha-placeholder.png') });
  });

  it('previews a model named host:port/namespace/model:tag', async () => {
    const name = `${new URL(registry.base).host}/library/tiny:1`;
    await page.fill('#add-url', name);
    await page.locator('#model-preview .mp-size').waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#model-preview .mp-size').textContent(), /^[۰-۹٫]+ کیلوبایت$/);
    assert.equal(await page.locator('#model-preview .mp-name').textContent(), name);
    await page.fill('#add-url', '');
  });

  it('grows the add box with its lines, counts them, and previews several', async () => {
    const box = page.locator('#add-url');
    const lineHeight = await box.evaluate((el) => parseFloat(getComputedStyle(el).lineHeight));
    const twoRows = await box.evaluate((el) => el.clientHeight);
    const model = `${new URL(registry.base).host}/library/tiny:1`;
    const lines = [
      ...Array.from({ length: 6 }, (_, i) => origin.url(`pasted-${i}.zip`, 1024, 0)),
      model,
      'not a link or a name!',
    ];
    await box.fill(lines.join('\n'));
    const grown = await box.evaluate((el) => ({ h: el.clientHeight, scroll: el.scrollHeight - el.clientHeight }));
    assert.ok(grown.h >= twoRows + 5 * lineHeight, `eight lines make the box taller: ${twoRows} → ${grown.h}`);
    assert.ok(grown.scroll <= 1, `eight lines fit without scrolling (${grown.scroll}px hidden)`);
    const count = await page.locator('#add-count').textContent();
    assert.match(count, /^۸ خط: ۶ فایل، ۱ مدل، ۱ خط نه نشانی است و نه نام مدل$/, count);
    // The preview lists what the lines are: six shown, "and 2 more"; the
    // model's size once the server has said it.
    await page.locator('#model-preview .mp-line').first().waitFor();
    assert.equal(await page.locator('#model-preview .mp-line').count(), 6);
    assert.match(await page.locator('#model-preview .mp-more').textContent(), /۲/);
    assert.equal(await page.locator('#model-preview .mp-line .mp-line-name').first().textContent(), 'pasted-0.zip');
    await box.fill([model, ...lines].join('\n'));
    const modelLine = page.locator('#model-preview .mp-line.model');
    await waitFor('the model\'s size', async () => /کیلوبایت/.test(await modelLine.locator('.mp-line-detail').textContent()));
    await page.locator('.add-card').screenshot({ path: path.join(shotDir, 'fa-desktop-light-add-lines.png') });
    // Many lines: the box stops at ten rows and scrolls.
    await box.fill(Array.from({ length: 30 }, (_, i) => origin.url(`many-${i}.zip`, 1024, 0)).join('\n'));
    const many = await box.evaluate((el) => ({ h: el.clientHeight, rows: el.rows }));
    assert.equal(many.rows, 10);
    assert.match(await page.locator('#add-count').textContent(), /^۳۰ خط/);
    await box.fill('');
    assert.equal(await box.evaluate((el) => el.rows), 2);
    assert.equal(await page.locator('#add-count').isVisible(), false);
    assert.equal(await page.locator('#model-preview').isVisible(), false);
  });

  it('lets a phone reach History and Statistics in the tab strip, with a cue', async () => {
    for (const lang of ['fa', 'en']) {
      await setLang(lang);
      for (const vp of [phone, { width: 360, height: 740 }]) {
        await page.setViewportSize(vp);
        await page.click('#tab-active');
        await nextFrame();
        const state = () => page.evaluate(() => {
          const strip = document.querySelector('[role="tablist"]').getBoundingClientRect();
          const seen = (id) => {
            const r = document.getElementById(id).getBoundingClientRect();
            return r.left >= strip.left - 1 && r.right <= strip.right + 1;
          };
          const cue = (id) => {
            const el = document.getElementById(id);
            const r = el.getBoundingClientRect();
            return !el.hidden && r.width > 0 && r.left >= strip.left - 1 && r.right <= strip.right + 1;
          };
          return { stats: seen('tab-stats'), history: seen('tab-history'), start: cue('tabs-more-start'), end: cue('tabs-more-end') };
        });
        let s = await state();
        assert.ok(s.stats || s.end, `${lang} ${vp.width}px: Statistics hidden with no cue: ${JSON.stringify(s)}`);
        if (vp === phone) await shoot(`${lang}-phone-light-tabs.png`);
        for (let i = 0; i < 5 && !(s.stats && s.history); i++) {
          await page.click('#tabs-more-end');
          await page.waitForTimeout(400); // the smooth scroll
          s = await state();
        }
        assert.ok(s.stats && s.history, `${lang} ${vp.width}px: the cue brings History and Statistics into view: ${JSON.stringify(s)}`);
        await page.click('#tab-stats');
        assert.equal(await page.locator('#panel-stats').isVisible(), true);
        await page.click('#tab-active');
        await nextFrame();
        s = await state();
        assert.equal(s.end, !s.stats, `${lang} ${vp.width}px: the end cue shows exactly when Statistics is out of view`);
      }
    }
    await page.setViewportSize(desktop);
    await nextFrame();
    assert.equal(await page.locator('.tabs-more:not([hidden])').count(), 0, 'no cue where every tab fits');
    await setLang('fa');
  });

  it('calls a model by one name with one size in Finished, History and Library; one word for completed; tar.gz; no "0 s"', async () => {
    await page.fill('#add-url', 'tiny:1');
    await page.locator('#model-preview .mp-size').waitFor({ timeout: 10_000 });
    const previewSize = await page.locator('#model-preview .mp-size').textContent();
    await page.click('#add-submit');
    const job = await waitFor('the model pulled', async () => {
      const j = (await api('GET', '/api/downloads')).downloads.find((d) => d.kind === 'model');
      return j && j.state === 'completed' ? j : null;
    }, 30_000);
    await page.click('#tab-finished');
    const fin = page.locator('#list-finished li.job', { has: page.locator('.job-kind.model') }).first();
    await fin.waitFor();
    const finished = { name: await fin.locator('.job-name').textContent(), size: await fin.locator('.job-size').textContent() };
    await page.click('#tab-history');
    const rec = page.locator('#history-body tr', { has: page.locator('.job-kind.model') }).first();
    await rec.waitFor();
    const hist = { name: await rec.locator('.job-name').textContent(), size: await rec.locator('td[data-label]').first().textContent() };
    await page.click('#tab-library');
    const lib = page.locator('#models-body tr').first();
    await lib.waitFor();
    const library = { name: await lib.locator('.job-name').textContent(), size: await lib.locator('td[data-label]').nth(1).textContent() };
    assert.equal(finished.name, job.name);
    assert.deepEqual({ finished, hist, library }, { finished: { name: job.name, size: previewSize }, hist: { name: job.name, size: previewSize }, library: { name: job.name, size: previewSize } },
      'one name and one size for the model');
    await shoot('fa-desktop-light-library-model.png');

    // One word for a completed download, and one for a canceled one, in
    // every tab.
    const cancel = (await api('POST', '/api/download/add', { url: origin.url('to-cancel.bin', 64 << 20, 64 << 10) })).downloads[0];
    await api('POST', `/api/download/${encodeURIComponent(cancel.id)}/cancel`);
    await page.setViewportSize({ width: desktop.width, height: 2000 }); // every row in view
    await page.click('#tab-finished');
    const badge = (name) => row(name).first().locator('.badge').textContent();
    await row('to-cancel.bin').first().waitFor();
    const words = { finished: [await badge('latin-report-2024.pdf'), await badge('to-cancel.bin')] };
    await page.click('#tab-history');
    const histBadge = (name) => page.locator('#history-body tr', { hasText: name }).first().locator('.badge').textContent();
    await page.locator('#history-body tr', { hasText: 'to-cancel.bin' }).first().waitFor();
    words.history = [await histBadge('latin-report-2024.pdf'), await histBadge('to-cancel.bin')];
    await page.click('#tab-stats');
    await page.locator('#stat-cards .label').first().waitFor();
    const labels = await page.locator('#stat-cards .label').allTextContents();
    words.stats = [labels[2], labels[4]];
    await page.setViewportSize(desktop);
    assert.deepEqual(words, { finished: ['تکمیل‌شده', 'لغوشده'], history: ['تکمیل‌شده', 'لغوشده'], stats: ['تکمیل‌شده', 'لغوشده'] });

    // A .tar.gz is a "tar.gz".
    const s = await api('POST', '/api/download/add', { url: origin.url('data-2025.tar.gz', 64 << 10, 0) });
    await waitFor('the tarball', async () => (await api('GET', `/api/download/${encodeURIComponent(s.downloads[0].id)}`)).state === 'completed');
    await waitFor('tar.gz among the types', async () => {
      await page.click('#tab-history');
      await page.click('#tab-stats');
      await page.waitForTimeout(200);
      return (await page.locator('#stat-types .bar-label').allTextContents()).includes('tar.gz');
    });
    assert.ok(!(await page.locator('#stat-types .bar-label').allTextContents()).includes('gz'), 'no "gz" type');

    // No "0 s": the file added again took no time, and says so with a dash.
    await page.click('#tab-history');
    await page.locator('#history-body tr').first().waitFor();
    const durations = await page.locator('#history-body td[data-label="' + fa.strings['col.duration'] + '"]').allTextContents();
    assert.ok(durations.length >= 3, JSON.stringify(durations));
    assert.ok(!durations.some((d) => /^[0۰] /.test(d)), `no zero durations: ${durations}`);
    assert.ok(durations.includes(fa.strings['dur.lt1']), `a download of less than a second says so: ${durations}`);
    const sub = await page.evaluate(async () => {
      const { makeI18n, findLanguage } = await import('/i18n.js');
      return ['fa', 'en'].map((c) => makeI18n(findLanguage(c)).duration(0.3));
    });
    assert.deepEqual(sub, [fa.strings['dur.lt1'], en.strings['dur.lt1']]);
  });

  it('says on the row in the web UI that the command line paused it (Ctrl-C)', async () => {
    const url = origin.url('handed-over.bin', 64 << 20, 64 << 10);
    const cli = spawn(bin, ['-output-dir', out, url], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' } });
    const exited = new Promise((resolve) => cli.once('exit', (code, signal) => resolve(code ?? signal)));
    try {
      await page.click('#tab-active');
      await waitFor('the handed-over download running in the web UI', async () => (await findJob('handed-over.bin'))?.state === 'downloading');
      await row('handed-over.bin').first().waitFor();
      cli.kill('SIGINT');
      assert.equal(await exited, 130, 'the command exits as Ctrl-C says');
    } finally {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    }
    const j = await findJob('handed-over.bin');
    assert.deepEqual([j.state, j.paused_by], ['paused', 'cli']);
    const note = row('handed-over.bin').first().locator('.job-note');
    await waitFor('the note', async () => (await note.isVisible()) && (await note.textContent()) === plain(fa.strings['note.pausedByCli']));
    await row('handed-over.bin').first().scrollIntoViewIfNeeded();
    await shoot('fa-desktop-light-paused-by-cli.png');
    // Resumed here, the note goes.
    await row('handed-over.bin').first().locator('button[data-action="resume"]').click();
    await waitFor('resumed', async () => (await findJob('handed-over.bin')).state !== 'paused');
    await waitFor('the note gone', async () => !(await note.isVisible()));
  });

  it('words the Finished rows\' buttons, keeps the queue\'s icons apart from download, and names the English settings', async () => {
    await page.click('#tab-finished');
    const done = row('latin-report-2024.pdf').first();
    await done.waitFor();
    const buttons = await done.locator('.job-actions [data-action]').evaluateAll((els) => els.map((el) => ({
      action: el.dataset.action,
      word: el.innerText.trim(),
      icon: el.querySelector('use')?.getAttribute('href'),
      color: getComputedStyle(el).color,
    })));
    assert.deepEqual(buttons.map((b) => b.action), ['open', 'remove', 'remove-file']);
    assert.deepEqual(buttons.map((b) => b.word), [fa.strings['act.saveShort'], fa.strings['act.removeShort'], fa.strings['act.deleteShort']]);
    assert.equal(new Set(buttons.map((b) => b.icon)).size, 3, `three different icons: ${JSON.stringify(buttons)}`);
    assert.notEqual(buttons[1].color, buttons[2].color, 'deleting the file is coloured apart from removing the row');
    const fits = await done.locator('.job-actions').evaluate((el) => el.scrollWidth <= el.clientWidth + 1);
    assert.ok(fits, 'the words fit their column');
    await shoot('fa-desktop-light-finished-words.png');

    // "To the bottom" does not look like "download": their strokes overlap
    // little (intersection over union of the drawn icons; before, 0.74).
    const html = await fs.readFile(indexHTML, 'utf8');
    const symbol = (id) => new RegExp(`<symbol id="${id}"[^>]*>(.*?)</symbol>`).exec(html)[1];
    const blank = await browser.newPage();
    const iou = await blank.evaluate(async ([a, b]) => {
      const ink = async (inner) => {
        const img = new Image();
        img.src = `data:image/svg+xml,${encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="96" height="96">${inner.replaceAll('currentColor', 'black')}</svg>`)}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = 96;
        c.height = 96;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, 96, 96).data;
        const out = [];
        for (let i = 3; i < d.length; i += 4) out.push(d[i] > 64);
        return out;
      };
      const [x, y] = [await ink(a), await ink(b)];
      let both = 0;
      let either = 0;
      for (let i = 0; i < x.length; i++) {
        if (x[i] && y[i]) both++;
        if (x[i] || y[i]) either++;
      }
      return both / either;
    }, [symbol('i-bottom'), symbol('i-download')]);
    await blank.close();
    assert.ok(iou < 0.35, `"to the bottom" and "download" overlap ${iou.toFixed(2)}`);
    const queueIcons = await page.evaluate(() => [...document.querySelectorAll('#list-queue [data-action="bottom"] use')].map((u) => u.getAttribute('href')));
    assert.ok(queueIcons.every((h) => h === '#i-bottom'));

    await setLang('en');
    assert.equal(await page.locator('#conc-label').textContent(), 'Simultaneous downloads');
    assert.equal(await page.locator('#schedule-label').textContent(), 'Download window: any time');
    const header = await page.evaluate(() => document.querySelector('.topbar').scrollWidth - document.querySelector('.topbar').clientWidth);
    assert.ok(header <= 0, `the English header fits at 1366px (${header}px too wide)`);
    await page.click('#tab-finished');
    const words = await row('latin-report-2024.pdf').first().locator('.job-actions [data-action]').evaluateAll((els) => els.map((el) => el.innerText.trim()));
    assert.deepEqual(words, ['Save', 'Remove', 'Delete file']);
    await shoot('en-desktop-light-finished-words.png');
    for (const [size, vp] of [['desktop', desktop], ['phone', phone]]) {
      for (const scheme of ['light', 'dark']) {
        await page.setViewportSize(vp);
        await page.emulateMedia({ colorScheme: scheme });
        for (const lang of ['en', 'fa']) {
          await setLang(lang);
          await page.click('#tab-finished');
          await nextFrame();
          await shoot(`${lang}-${size}-${scheme}-details-finished.png`);
          await page.click('#tab-active');
          await nextFrame();
          await shoot(`${lang}-${size}-${scheme}-details-active.png`);
        }
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize(desktop);
    await setLang('fa');
  });

  it('logged no console error', () => {
    // The add's deliberate 400s are Chromium's own lines; nothing else.
    assert.deepEqual(consoleErrors.filter((e) => !/status of 400/.test(e)), []);
  });
});
