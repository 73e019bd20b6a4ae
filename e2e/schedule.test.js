// The daily time window, as a person sets it on the page, against a server
// whose clock the test sets (OMD_TEST_CLOCK_OFFSET, a Go duration added to
// its time.Now; TZ=UTC so that "02:00" means the same to both sides).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startOrigin } from './lib/origin.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import { desktop, waitFor, apiClient, shoot, shownRow, openPage } from './lib/page.js';
import fa from '../templates/i18n/fa.js';

// clockAt returns the offset that makes the server's UTC clock read
// hh:mm:ss now (today), as a Go duration.
function clockAt(hh, mm, ss) {
  const now = new Date();
  const target = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hh, mm, ss);
  return { offsetMs: target - now.getTime(), env: `${target - now.getTime()}ms` };
}

describe('a daily time window for the queue', { timeout: 120_000 }, () => {
  let tmp;
  let bin;
  let origin;
  let omd;
  let browser;
  let page;
  let api;
  let clock;
  const consoleErrors = [];

  async function start(hh, mm, ss) {
    clock = clockAt(hh, mm, ss);
    omd = await startOmd(bin, path.join(tmp, 'out'), { env: { TZ: 'UTC', OMD_TEST_CLOCK_OFFSET: clock.env } });
    api = apiClient(omd.url);
  }

  const fetched = (name) => origin.requests.filter((r) => r.url.endsWith(`/${name}`));
  const row = (name) => shownRow(page, name);
  const openDialog = async () => {
    await page.click('#schedule-open');
    await page.locator('#schedule-dialog[open]').waitFor();
  };

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-schedule-'));
    origin = await startOrigin();
    bin = await buildBinary(tmp);
    await start(12, 0, 0);
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR', timezoneId: 'UTC' }, consoleErrors);
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    await origin?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('is set from the page, and the page says when the queue will next run', async () => {
    await page.goto(omd.url);
    await page.locator('#schedule-open').waitFor();
    assert.equal(await page.locator('#schedule-label').textContent(), fa.strings['schedule.anyTime']);
    assert.equal(await page.locator('#schedule-bar').isVisible(), false);
    await openDialog();
    // Persian digits typed are read as a time.
    await page.fill('#schedule-start', '۲:۰۰');
    await page.fill('#schedule-end', '07:00');
    await page.click('#schedule-save');
    await page.locator('#schedule-dialog[open]').waitFor({ state: 'detached', timeout: 5000 }).catch(() => {});
    const s = await waitFor('the window saved', async () => {
      const r = await api('GET', '/api/settings');
      return r.schedule_start === '02:00' && r.schedule_end === '07:00' ? r : null;
    }, 5000);
    // It is noon on the server: the queue next runs at 02:00 tomorrow.
    const next = new Date(s.schedule_next);
    assert.deepEqual([next.getUTCHours(), next.getUTCMinutes()], [2, 0], s.schedule_next);
    const serverNow = Date.now() + clock.offsetMs;
    assert.ok(next.getTime() > serverNow && next.getTime() - serverNow < 15 * 3600e3, `next run ${s.schedule_next}`);

    await page.locator('#schedule-bar.closed').waitFor({ timeout: 5000 });
    const bar = await page.locator('#schedule-text').textContent();
    assert.match(bar, /۰۲:۰۰ تا ۰۷:۰۰/);
    assert.match(bar, /صف .*ساعت ۰۲:۰۰ دوباره راه می‌افتد/);
    assert.equal(await page.locator('#schedule-label').textContent(), '۰۲:۰۰ تا ۰۷:۰۰');
    await shoot(page, 'fa-desktop-light-schedule-closed.png');
  });

  it('keeps a download added outside the window away from the origin', async () => {
    await page.fill('#add-url', origin.url('night.bin', 256 << 10, 0));
    await page.click('#add-submit');
    await row('night.bin').first().waitFor({ timeout: 5000 });
    assert.equal(await row('night.bin').first().getAttribute('data-state'), 'queued');
    assert.equal(await row('night.bin').first().locator('.job-eta').textContent(), 'منتظر ساعت ۰۲:۰۰');
    await page.waitForTimeout(2500);
    assert.deepEqual(fetched('night.bin'), [], 'no request to the origin outside the window');
    assert.equal((await api('GET', '/api/downloads')).downloads.find((d) => d.name === 'night.bin').state, 'queued');
  });

  it('refuses a bad window with a sentence, the server\'s words folded away', async () => {
    await openDialog();
    await page.fill('#schedule-start', 'abc');
    await page.click('#schedule-save');
    assert.equal(await page.locator('#schedule-error').textContent(), fa.strings['schedule.errFormat']);
    await page.fill('#schedule-start', '05:00');
    await page.fill('#schedule-end', '');
    await page.click('#schedule-save');
    assert.equal(await page.locator('#schedule-error').textContent(), fa.strings['schedule.errBoth']);
    // Start and end equal: the server says no (400).
    await page.fill('#schedule-end', '05:00');
    await page.click('#schedule-save');
    await page.locator('#schedule-error .err-block').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#schedule-error .err-sentence').textContent(), fa.strings['schedule.errServer']);
    assert.equal(await page.locator('#schedule-error .err-raw').isVisible(), false);
    assert.equal((await api('GET', '/api/settings')).schedule_start, '02:00', 'the window is unchanged');
    await page.click('#schedule-cancel');
  });

  it('starts the download when the window is moved over now', async () => {
    await openDialog();
    await page.fill('#schedule-start', '11:00');
    await page.fill('#schedule-end', '13:00');
    await page.click('#schedule-save');
    await waitFor('a request to the origin', async () => fetched('night.bin').length > 0, 10_000);
    await waitFor('the window open on the page', async () => (await page.locator('#schedule-bar').getAttribute('class')) === 'schedule-bar');
    assert.match(await page.locator('#schedule-text').textContent(), /۱۱:۰۰ تا ۱۳:۰۰/);
    await waitFor('completed', async () => (await api('GET', '/api/downloads')).downloads.find((d) => d.name === 'night.bin').state === 'completed', 10_000);
  });

  it('keeps the window across a restart, and the queue starts by itself when the window opens', async () => {
    await api('POST', '/api/settings', { schedule_start: '02:00', schedule_end: '07:00' });
    await api('POST', '/api/download/add', { url: origin.url('dawn.bin', 256 << 10, 0) });
    await omd.stop();
    // Four seconds to two in the morning, on the server.
    await start(1, 59, 56);
    const s = await api('GET', '/api/settings');
    assert.deepEqual([s.schedule_start, s.schedule_end], ['02:00', '07:00'], 'the window survives the restart');
    await page.goto(omd.url);
    await page.locator('#schedule-bar.closed').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#schedule-text').textContent(), /۰۲:۰۰/);
    const first = await waitFor('the queue starting at 02:00', async () => fetched('dawn.bin')[0], 20_000);
    const serverTime = new Date(first.at + clock.offsetMs);
    assert.ok(serverTime.getUTCHours() === 2, `the first request came at ${serverTime.toISOString()} server time, not before 02:00`);
    await waitFor('the window open on the page', async () => (await page.locator('#schedule-bar').getAttribute('class')) === 'schedule-bar', 5000);
    await page.setViewportSize({ width: 390, height: 844 });
    await shoot(page, 'fa-phone-light-schedule-open.png');
    await page.setViewportSize(desktop);
    assert.deepEqual(consoleErrors.filter((e) => !/status of 400/.test(e)), []);
  });
});

// The window, its next start and "now" in the server's one clock, named,
// whatever the browser's zone (issue 25: with a UTC server's window at
// 03:00–07:00, a page in Tehran said "next run at 06:30", and the
// dialog's server-time line was empty).
describe('the window in the server\'s clock, seen from another zone', { timeout: 120_000 }, () => {
  let tmp;
  let bin;
  let omd;
  let browser;
  const consoleErrors = [];

  // open starts a server whose UTC clock reads 11:59:30, in zone tz, with
  // the window 03:00–07:00 on its clock, and a page on it in browserZone.
  async function open(tz, browserZone, lang) {
    await omd?.stop();
    const clock = clockAt(11, 59, 30);
    omd = await startOmd(bin, path.join(tmp, `out-${tz.replace('/', '-')}`), { env: { TZ: tz, OMD_TEST_CLOCK_OFFSET: clock.env } });
    await apiClient(omd.url)('POST', '/api/settings', { schedule_start: '03:00', schedule_end: '07:00' });
    const page = await openPage(browser, { viewport: desktop, locale: lang === 'fa' ? 'fa-IR' : 'en-US', timezoneId: browserZone }, consoleErrors);
    await page.goto(`${omd.url}?lang=${lang}`);
    await page.locator('#schedule-bar.closed').waitFor({ timeout: 5000 });
    return page;
  }

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-clock-'));
    bin = await buildBinary(tmp);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await omd?.stop();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('says a UTC server\'s window, next start and time on its clock to a page in Tehran', async () => {
    const page = await open('UTC', 'Asia/Tehran', 'fa');
    const bar = await page.locator('#schedule-text').textContent();
    assert.match(bar, /۰۳:۰۰ تا ۰۷:۰۰/);
    // 03:00 tomorrow on the server's clock, 15 hours from its noon; not
    // the browser's 06:30.
    assert.match(bar, /صف \S+ ساعت ۰۳:۰۰ دوباره راه می‌افتد \(۱۵ ساعت دیگر\)/, bar);
    assert.doesNotMatch(bar, /۰۶:۳۰/);
    assert.match(await page.locator('#schedule-clock').textContent(), /^ساعت سرور (۱۱:۵۹|۱۲:۰۰)، UTC$/);
    assert.equal(await page.locator('#schedule-clock bdi').textContent(), 'UTC', 'the zone is isolated Latin');
    await page.click('#schedule-open');
    const line = page.locator('#schedule-server-time');
    assert.equal(await line.isVisible(), true, 'the dialog\'s server-time line is filled');
    assert.match(await line.textContent(), /^ساعت سرور اکنون (۱۱:۵۹|۱۲:۰۰) است \(UTC\)؛/);
    await shoot(page, 'fa-desktop-light-schedule-clock-dialog.png');
    await page.click('#schedule-cancel');
    await shoot(page, 'fa-desktop-light-schedule-clock.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await shoot(page, 'fa-phone-light-schedule-clock.png');
    await page.context().close();
  });

  it('names a Tehran server\'s zone by its offset to a page in UTC, in English', async () => {
    const page = await open('Asia/Tehran', 'UTC', 'en');
    const bar = await page.locator('#schedule-text').textContent();
    // Noon UTC is 15:30 in Tehran: 03:00 there is 11 h 30 min away.
    assert.match(bar, /The queue will next run on \w+ at 03:00 \(in 11 h 30 min\)\./, bar);
    assert.match(await page.locator('#schedule-clock').textContent(), /^Server time 15:(29|30), UTC\+03:30$/);
    await page.click('#schedule-open');
    assert.match(await page.locator('#schedule-server-time').textContent(), /^The server’s clock reads 15:(29|30) \(UTC\+03:30\);/);
    await page.click('#schedule-cancel');
    await shoot(page, 'en-desktop-light-schedule-clock.png');
    await page.context().close();
    assert.deepEqual(consoleErrors, []);
  });
});
