// A download that waits out an outage (issue 22), as a person sees it: the
// row is not failed; it says "waiting for the network — next try in …
// (attempt …)" in Persian and in English, the failure in words with the raw
// error folded away, and a "Try now" button that makes the server try at
// once. When the server comes back (on the same port), it finishes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fillBytes } from './lib/origin.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import { desktop, waitFor, apiClient, shoot, shownRow, visibleTexts, ownTextSkip, openPage } from './lib/page.js';
import fa from '../templates/i18n/fa.js';
import en from '../templates/i18n/en.js';

// freePort is a loopback port nothing listens on (a refused connection).
function freePort() {
  return new Promise((resolve) => {
    const l = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = l.address();
      l.close(() => resolve(port));
    });
  });
}

// prefix is a table's sentence up to its first placeholder.
const prefix = (s) => s.split('{')[0].trim();

describe('a download that waits for the network', { timeout: 120_000 }, () => {
  let tmp;
  let omd;
  let browser;
  let page;
  let api;
  let port;
  let server;
  const consoleErrors = [];
  const size = 256 * 1024;

  const row = () => shownRow(page, 'waiting.bin');
  const job = async () => (await api('GET', '/api/downloads')).downloads.find((d) => d.source.endsWith('/waiting.bin'));

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-waiting-'));
    port = await freePort();
    const bin = await buildBinary(tmp);
    omd = await startOmd(bin, path.join(tmp, 'out'));
    api = apiClient(omd.url);
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR' }, consoleErrors);
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    server?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('is shown waiting, not failed, in Persian, with a Try now button', async () => {
    // No retries given: the server's default, which waits an outage out.
    await api('POST', '/api/download/add', { url: `http://127.0.0.1:${port}/waiting.bin` });
    await page.goto(omd.url);
    await row().waitFor();
    await waitFor('the row to say it waits', async () => (await row().locator('.badge').textContent()) === fa.strings['wait.network']);
    const r = row();
    assert.equal(await r.getAttribute('data-state'), 'downloading');
    const speed = await r.locator('.speed').textContent();
    assert.ok(speed.startsWith(fa.strings['wait.network']) && (speed.includes(prefix(fa.strings['wait.next'])) || speed.includes(prefix(fa.strings['wait.now']))),
      `speed column: ${speed}`);
    assert.match(speed, /[۰-۹]/, 'the attempt and the time in Persian digits');
    assert.equal(await r.locator('.job-wait .err-sentence').textContent(), fa.errors.refused);
    assert.equal(await r.locator('.job-wait .err-raw').isVisible(), false, 'the raw error is folded away');
    assert.equal(await r.locator('.try-now').textContent(), fa.strings['act.tryNow']);
    assert.equal(await r.locator('.job-error').isVisible(), false);
    assert.ok((await page.locator('#overall-figures').textContent()).includes(fa.strings['overall.waiting'].replace('{count}', '۱')),
      'the header says one download waits for the network');
    const texts = await visibleTexts(page, ownTextSkip);
    assert.ok(!texts.some((t) => /refused|connect/i.test(t)), `English on the Persian page: ${texts.filter((t) => /refused|connect/i.test(t))}`);
    await shoot(page, 'waiting-fa.png');
    const j = await job();
    assert.equal(j.state, 'downloading');
    assert.equal(j.waiting.reason, 'refused');
  });

  it('tries at once when Try now is pressed', async () => {
    // Wait until the backoff is a few seconds long, then press the button:
    // the next attempt comes at once, not at the end of the wait.
    const before = await waitFor('a wait of a few seconds', async () => {
      const j = await job();
      return j?.waiting && Date.parse(j.waiting.next_try) - Date.now() > 2500 ? j.waiting : null;
    }, 30_000);
    await row().locator('.try-now').click();
    const after = await waitFor('the next attempt', async () => {
      const j = await job();
      return j?.waiting && j.waiting.attempt > before.attempt ? j.waiting : null;
    }, 2000);
    assert.ok(Date.now() < Date.parse(before.next_try), `attempt ${after.attempt} came only at the end of the wait`);
  });

  it('says the same in English', async () => {
    await page.goto(`${omd.url}?lang=en`);
    await row().waitFor();
    await waitFor('the English badge', async () => (await row().locator('.badge').textContent()) === en.strings['wait.network']);
    const speed = await row().locator('.speed').textContent();
    assert.ok(speed.includes(prefix(en.strings['wait.next'])) || speed.includes(prefix(en.strings['wait.now'])), `speed column: ${speed}`);
    assert.equal(await row().locator('.try-now').textContent(), en.strings['act.tryNow']);
    assert.equal(await row().locator('.job-wait .err-sentence').textContent(), en.errors.refused);
    await shoot(page, 'waiting-en.png');
  });

  it('finishes when the server is back on the same port', async () => {
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      res.end(fillBytes(Buffer.alloc(size), 0));
    });
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    await row().locator('.try-now').click();
    await waitFor('the download to finish', async () => (await job())?.state === 'completed', 20_000);
    const stat = await fs.stat(path.join(tmp, 'out', 'waiting.bin'));
    assert.equal(stat.size, size);
    assert.deepEqual(consoleErrors, []);
  });
});
