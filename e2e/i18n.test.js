// The page's languages: every table has every key, and failures reach the
// reader as a sentence in the page's language, never as the other
// language's words; the server's own (English) detail stays folded away.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrigin } from './lib/origin.js';
import { startRegistry } from './lib/registry.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import { desktop, waitFor, apiClient, visibleTexts, ownTextSkip, latinRe, arabicScriptRe, shoot, openPage } from './lib/page.js';
import { languages } from '../templates/i18n/index.js';

const templates = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'templates');
const byCode = Object.fromEntries(languages.map((l) => [l.code, l]));
const plain = (s) => s.replace(/\{\{(.*?)\}\}/g, '$1').replace(/\[\[(.*?)\]\]/g, '$1');
const placeholders = (v) => new Set([...JSON.stringify(v).matchAll(/(?<!\{)\{(\w+)\}(?!\})/g)].map((m) => m[1]));

// The failure codes of the API (docs/API.md, "error_code").
const errorCodes = [
  'not_found', 'forbidden', 'unauthorized', 'proxy_auth', 'rate_limited', 'server_error', 'http_error', 'dns',
  'refused', 'timeout', 'network', 'stalled', 'tls', 'proxy', 'redirect_loop', 'checksum', 'disk_full', 'no_space',
  'permission', 'bad_url', 'model_not_found', 'registry_refused', 'registry_auth', 'bad_manifest', 'platform',
  'bad_zip', 'canceled', 'unknown',
];

describe('language tables', () => {
  it('have the same keys and the same placeholders in every language', () => {
    const [first, ...rest] = languages;
    assert.equal(first.code, 'fa', 'Persian is the default (first) language');
    for (const lang of rest) {
      for (const part of ['strings', 'errors']) {
        const missing = Object.keys(first[part]).filter((k) => !(k in lang[part]));
        const extra = Object.keys(lang[part]).filter((k) => !(k in first[part]));
        assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${lang.code}.${part} against ${first.code}`);
        for (const k of Object.keys(first[part])) {
          assert.deepEqual([...placeholders(lang[part][k])].sort(), [...placeholders(first[part][k])].sort(), `{…} in ${lang.code} "${k}"`);
        }
      }
    }
    for (const lang of languages) {
      for (const f of ['code', 'name', 'dir', 'locale', 'calendar', 'digits']) assert.ok(lang[f], `${lang.code} has ${f}`);
      assert.equal(lang.units.length, 5);
    }
  });

  it('say every failure code, each differently', () => {
    for (const lang of languages) {
      assert.deepEqual(Object.keys(lang.errors).sort(), [...errorCodes].sort(), lang.code);
      const sentences = Object.values(lang.errors);
      assert.equal(new Set(sentences).size, sentences.length, `${lang.code}: one sentence per code`);
    }
  });

  it('hold every key the page uses', async () => {
    // The page's modules: every templates/*.js.
    const modules = (await fs.readdir(templates)).filter((f) => f.endsWith('.js'));
    const js = (await Promise.all(modules.map((f) => fs.readFile(path.join(templates, f), 'utf8')))).join('\n');
    const html = await fs.readFile(path.join(templates, 'index.html'), 'utf8');
    // Every literal shaped like a key ("area.name"), less the few that are
    // selectors or storage names.
    const notKeys = new Set(['omd.lang', 'select.job-limit', 'li.job', 'mirror.stat']);
    const used = new Set([
      ...[...js.matchAll(/'([a-z]+\.[A-Za-z][\w.-]*)'/g)].map((m) => m[1]).filter((k) => !notKeys.has(k)),
      ...[...html.matchAll(/data-t(?:-label|-title|-placeholder)?="([\w.-]+)"/g)].map((m) => m[1]),
    ]);
    assert.ok(used.size > 200, `found ${used.size} keys`);
    for (const lang of languages) {
      const missing = [...used].filter((k) => !(k in lang.strings));
      assert.deepEqual(missing, [], `${lang.code} lacks keys the page uses`);
    }
    // Keys built at run time: every state, phase and bulk action.
    for (const lang of languages) {
      for (const st of ['queued', 'downloading', 'paused', 'completed', 'failed', 'canceled', 'verifying', 'packaging']) assert.ok(`state.${st}` in lang.strings);
      for (const k of ['running', 'queued', 'paused', 'failed']) assert.ok(`overall.${k}` in lang.strings);
      for (const w of ['pause-all', 'resume-all', 'cancel-all', 'clear-finished']) assert.ok(`bulk.${w}.title` in lang.strings && `bulk.${w}.done` in lang.strings);
    }
  });
});

// Failures of each kind the tests can cause on loopback, with the code the
// server must give them.
describe('failures in words, in each language', { timeout: 120_000 }, () => {
  let tmp;
  let origin;
  let registry;
  let omd;
  let browser;
  let page;
  let api;
  const consoleErrors = [];
  const failures = []; // { name, code, job }

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-i18n-'));
    origin = await startOrigin();
    registry = await startRegistry();
    const bin = await buildBinary(tmp);
    omd = await startOmd(bin, path.join(tmp, 'out'), { args: ['-registry', registry.base] });
    api = apiClient(omd.url);
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR' }, consoleErrors);

    // A port nothing listens on: a refused connection.
    const closed = await new Promise((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    const want = [
      { name: 'gone.bin', code: 'not_found', url: `${origin.base}/missing/gone.bin` },
      { name: 'locked.bin', code: 'forbidden', url: `${origin.base}/status/403/locked.bin` },
      { name: 'private.bin', code: 'unauthorized', url: `${origin.base}/status/401/private.bin` },
      { name: 'refused.bin', code: 'refused', url: `http://127.0.0.1:${closed}/refused.bin` },
      { name: 'broken.bin', code: 'server_error', url: `${origin.base}/status/500/broken.bin` },
      { name: 'teapot.bin', code: 'http_error', url: `${origin.base}/status/418/teapot.bin` },
      { name: 'wrong-sum.bin', code: 'checksum', url: origin.url('wrong-sum.bin', 4096), sha256: '0'.repeat(64) },
      { name: 'nosuch:1', code: 'model_not_found', url: 'nosuch:1' },
    ];
    for (const w of want) {
      const body = { url: w.url, retries: '0' };
      if (w.sha256) body.sha256 = w.sha256;
      const { downloads } = await api('POST', '/api/download/add', body);
      failures.push({ ...w, id: downloads[0].id });
    }
    await waitFor('every download to fail', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      const byId = new Map(downloads.map((d) => [d.id, d]));
      for (const f of failures) f.job = byId.get(f.id);
      return failures.every((f) => f.job && f.job.state === 'failed');
    }, 40_000);
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    await origin?.close();
    await registry?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('gives each failure its code in the API', () => {
    const got = Object.fromEntries(failures.map((f) => [f.name, f.job.error_code]));
    const want = Object.fromEntries(failures.map((f) => [f.name, f.code]));
    assert.deepEqual(got, want, 'error_code of each failed download (errorCode in errors.go)');
  });

  async function checkPage(langCode) {
    const lang = byCode[langCode];
    const others = languages.filter((l) => l.code !== langCode);
    await page.click('#tab-active');
    for (const f of failures) {
      const row = page.locator('#list-active li.job', { has: page.locator('.job-name', { hasText: f.name }) }).first();
      await row.waitFor({ timeout: 5000 });
      assert.equal(plain(await row.locator('.err-sentence').textContent()), plain(lang.errors[f.code]), `${langCode}: ${f.name}`);
      assert.equal(await row.locator('.err-detail').getAttribute('open'), null, 'the detail starts folded');
      assert.equal(await row.locator('.err-raw').textContent(), f.job.error_detail || f.job.error, 'the raw error behind the sentence, folded');
    }
    await assertNoForeignWords(lang, others, failures);

    // History says the same, from the records' error_code.
    await page.click('#tab-history');
    await page.locator('#history-body tr').first().waitFor({ timeout: 5000 });
    for (const f of failures) {
      const tr = page.locator('#history-body tr', { hasText: f.name }).first();
      assert.equal(plain(await tr.locator('.err-sentence').textContent()), plain(lang.errors[f.code]), `history ${langCode}: ${f.name}`);
    }
    await assertNoForeignWords(lang, others, failures);
    await shoot(page, `${langCode}-desktop-light-failures-history.png`);
    await page.click('#tab-active');
    await shoot(page, `${langCode}-desktop-light-failures.png`);
  }

  // assertNoForeignWords fails when the visible page holds a sentence of
  // another language's table for a failure, or the server's raw detail.
  async function assertNoForeignWords(lang, others, fails) {
    const seen = (await visibleTexts(page)).join('\n');
    for (const o of others) {
      for (const [code, sentence] of Object.entries(o.errors)) {
        assert.ok(!seen.includes(plain(sentence)), `the ${lang.code} page shows the ${o.code} sentence for ${code}: "${plain(sentence)}"`);
      }
    }
    for (const f of fails) assert.ok(!seen.includes(f.job.error), `the raw detail of ${f.name} is visible: ${f.job.error}`);
    const own = await visibleTexts(page, ownTextSkip);
    const foreign = own.filter((t) => (lang.dir === 'rtl' ? latinRe : arabicScriptRe).test(t));
    assert.deepEqual(foreign, [], `${lang.code}: text of the other script outside <bdi>`);
  }

  it('shows them in Persian with the detail folded away', async () => {
    await page.goto(omd.url);
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'fa');
    await checkPage('fa');
    // The detail opens from the keyboard and shows the server's words.
    const first = page.locator('#list-active li.job .err-detail summary').first();
    await first.focus();
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#list-active li.job .err-raw').first().isVisible(), true);
    await page.keyboard.press('Enter');
  });

  it('shows them in English with ?lang=en, Gregorian dates and Latin digits', async () => {
    await page.goto(`${omd.url}?lang=en#history`);
    await page.locator('#tab-history[aria-selected="true"]').waitFor();
    assert.deepEqual(await page.evaluate(() => [document.documentElement.lang, document.documentElement.dir]), ['en', 'ltr']);
    await page.locator('#history-body tr').first().waitFor({ timeout: 5000 });
    const date = await page.locator('#history-body tr td[data-label]').last().textContent();
    assert.match(date, new RegExp(`${new Date().getFullYear()}`), `a Gregorian year in ${date}`);
    await checkPage('en');
    assert.deepEqual(consoleErrors.filter((e) => !/status of (4\d\d)/.test(e)), []);
  });

  it('keeps the choice after ?lang= is gone, and goes back to Persian from the switch', async () => {
    await page.goto(omd.url);
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await page.click('#lang-switch');
    await waitFor('Persian again', async () => (await page.evaluate(() => document.documentElement.dir)) === 'rtl');
    await page.reload();
    await page.locator('#tab-active[aria-selected="true"]').waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'fa');
    // Jalali dates and Persian digits in History.
    await page.click('#tab-history');
    await page.locator('#history-body tr').first().waitFor({ timeout: 5000 });
    const date = await page.locator('#history-body tr td[data-label]').last().textContent();
    assert.match(date, /[۰-۹]{4}/);
    assert.ok(!date.includes(String(new Date().getFullYear())), `a Jalali year in ${date}`);
  });
});
