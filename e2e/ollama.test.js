// The Ollama tab: this machine's Ollama models, in Persian and in English.
// A models folder written as Ollama writes it (a model of the test
// registry, and one made here), the real binary with OLLAMA_MODELS, the
// tiny registry (lib/registry.js) for the update check. Each model is
// exported to a zip through the queue (and two into one zip); the check
// says up to date, then — the registry's tag moved — that a newer version
// is there, whose pull the page adds; a folder that cannot be read says so.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startRegistry } from './lib/registry.js';
import { buildBinary, startOmd } from './lib/omd.js';
import { launchBrowser } from './lib/browser.js';
import { shotDir, desktop, phone, waitFor, apiClient, visibleTexts, ownTextSkip, latinRe, arabicScriptRe, shoot, openPage } from './lib/page.js';

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const faNum = (n) => new Intl.NumberFormat('fa-IR').format(n);

// writeModel lays out a model as Ollama does: blobs/sha256-<hex> and
// manifests/<host>/<namespace>/<model>/<tag>.
async function writeModel(dir, host, ns, model, tag, manifest, blobs) {
  await fs.mkdir(path.join(dir, 'blobs'), { recursive: true });
  for (const [digest, data] of blobs) await fs.writeFile(path.join(dir, 'blobs', digest.replace(':', '-')), data);
  await fs.mkdir(path.join(dir, 'manifests', host, ns, model), { recursive: true });
  await fs.writeFile(path.join(dir, 'manifests', host, ns, model, tag), manifest);
}

// madeHere is a model the registry does not have (ollama create).
function madeHere() {
  const blobs = new Map();
  const desc = (mediaType, data) => {
    const digest = `sha256:${sha(data)}`;
    blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  };
  const weights = Buffer.alloc(200 << 10, 7);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: desc('application/vnd.docker.container.image.v1+json', Buffer.from('{"model_format":"gguf","model_family":"llama","model_type":"1.2B","file_type":"Q4_K_M"}')),
    layers: [desc('application/vnd.ollama.image.model', weights)],
  }));
  return { manifest, blobs };
}

describe('the Ollama tab', { timeout: 180_000 }, () => {
  let tmp;
  let registry;
  let modelsDir;
  let server;
  let browser;
  let page;
  let api;
  let host;
  let bin;
  const errors = [];
  const requests = [];

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-ollama-'));
    await fs.mkdir(shotDir, { recursive: true });
    registry = await startRegistry();
    host = new URL(registry.base).host;
    modelsDir = path.join(tmp, 'ollama-models');
    // The registry's tiny:1, as `ollama pull` would have left it, and a
    // model made here under the same host (the registry does not have it).
    await writeModel(modelsDir, host, 'library', 'tiny', '1', registry.manifest, registry.blobs);
    const made = madeHere();
    await writeModel(modelsDir, host, 'library', 'made', 'latest', made.manifest, made.blobs);
    bin = await buildBinary(tmp);
    server = await startOmd(bin, path.join(tmp, 'out'), { args: ['-registry', registry.base], env: { OLLAMA_MODELS: modelsDir } });
    api = apiClient(server.url);
    browser = await launchBrowser();
    page = await openPage(browser, { viewport: desktop, locale: 'fa-IR' }, errors);
    page.on('request', (r) => requests.push(r.url()));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await registry?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  const row = (name) => page.locator('#ollama-body tr', { has: page.locator('.job-name', { hasText: name }) });

  it('lists the models in Persian, with the folder and the disk they take', async () => {
    await page.goto(`${server.url}#ollama`);
    await page.locator('#tab-ollama[aria-selected="true"]').waitFor();
    await page.locator('#ollama-body tr').nth(1).waitFor();
    const local = await api('GET', '/api/models/local');
    assert.equal(local.models.length, 2);
    assert.equal(await page.locator('#ollama-dir').textContent(), modelsDir);
    // The disk used, once each blob, in Persian digits and units.
    const summary = await page.locator('#ollama-summary').textContent();
    assert.ok(summary.startsWith(`${faNum(2)} مدل، `) && summary.endsWith(' روی دیسک'), summary);
    assert.ok(/[۰-۹]/.test(summary) && summary.includes('کیلوبایت'), summary);
    const tiny = local.models.find((m) => m.name.endsWith('tiny:1'));
    const tinyRow = row('tiny:1');
    assert.equal(await tinyRow.locator('bdi.mono').textContent(), tiny.id);
    assert.match(await tinyRow.textContent(), /F32/);
    assert.match(await row('made:latest').textContent(), /Q4_K_M/);
    const ownText = (await visibleTexts(page, ownTextSkip)).filter((t) => latinRe.test(t));
    assert.deepEqual(ownText, [], 'no Latin text outside <bdi> on the Persian page');
    await shoot(page, 'fa-desktop-ollama.png');
    await page.setViewportSize(phone);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone (${overflow}px too wide)`);
    await shoot(page, 'fa-phone-ollama.png');
    await page.setViewportSize(desktop);
  });

  it('checks for an update: up to date, then a newer version to pull; a tag the registry lacks', async () => {
    const tinyRow = row('tiny:1');
    await tinyRow.locator('button[data-check]').click();
    await tinyRow.locator('.check-line.ok').waitFor();
    assert.equal(await tinyRow.locator('.check-line').textContent(), 'به‌روز است');
    assert.deepEqual(registry.methods, ['HEAD'], 'the check asks with a HEAD of the manifest');

    registry.publish();
    await tinyRow.locator('button[data-check]').click();
    await tinyRow.locator('.check-line.warn').waitFor();
    assert.match(await tinyRow.locator('.check-line').textContent(), /^نسخهٔ تازه‌تری هست؛ دریافتش کنید/);
    await row('made:latest').locator('button[data-check]').click();
    await row('made:latest').locator('.check-line.muted').waitFor();
    assert.match(await row('made:latest').locator('.check-line').textContent(), /مخزن این برچسب را ندارد/);
    await shoot(page, 'fa-desktop-ollama-checked.png');

    // "Pull it" adds the newer version to the queue.
    await tinyRow.locator('button[data-pull]').click();
    const pulled = await waitFor('the pull of the newer version', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      return downloads.find((d) => d.kind === 'model' && d.state === 'completed');
    }, 30_000);
    assert.ok(pulled.source.endsWith('/library/tiny:1'), pulled.source);
  });

  it('exports a model, and two into one zip, through the queue into the Library', async () => {
    await row('made:latest').locator('button[data-export]').click();
    const job = await waitFor('the export to finish', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      return downloads.find((d) => d.kind === 'export' && d.state === 'completed');
    }, 30_000);
    assert.equal(job.path, 'made-latest.zip');
    assert.equal(job.models_dir, modelsDir);
    // Both chosen: one zip, each blob once.
    await row('tiny:1').locator('input[data-choose]').check();
    await row('made:latest').locator('input[data-choose]').check();
    const both = page.locator('#ollama-export-chosen');
    assert.equal(await both.textContent(), `${faNum(2)} مدل در یک فایل zip`);
    await both.click();
    const two = await waitFor('the export of both', async () => {
      const { downloads } = await api('GET', '/api/downloads');
      return downloads.find((d) => d.kind === 'export' && d.state === 'completed' && d.path.includes('-and-1-more'));
    }, 30_000);
    const { models, files } = await api('GET', '/api/library');
    assert.ok(files.some((f) => f.path === two.path && f.kind === 'model'), 'the zip is in the Library');
    assert.equal(models.filter((m) => m.path === two.path).length, 2, 'the Library reads both models from it');
    // The export's row in Finished: the model icon, its names, the zip.
    await page.click('#tab-finished');
    const exportRow = page.locator('#list-finished li.job', { has: page.locator('.job-source', { hasText: two.path }) });
    await exportRow.waitFor();
    assert.equal(await exportRow.locator('.job-kind').getAttribute('title'), 'برون‌بری از Ollama');
    assert.match(await exportRow.locator('.job-note').textContent(), /^از Ollama: /);
    const ownText = (await visibleTexts(page, ownTextSkip)).filter((t) => latinRe.test(t));
    assert.deepEqual(ownText, [], 'no Latin text outside <bdi> in Finished');
    await shoot(page, 'fa-desktop-finished-export.png');
  });

  it('reads the same in English', async () => {
    await page.goto(`${server.url}?lang=en#ollama`);
    await page.locator('#ollama-body tr').nth(1).waitFor();
    assert.equal(await page.locator('#tab-ollama').textContent(), 'Ollama models');
    assert.match(await page.locator('#ollama-summary').textContent(), /^2 models, [\d.]+ KB on disk$/);
    const made = row('made:latest');
    await made.locator('button[data-check]').click();
    await made.locator('.check-line.muted').waitFor();
    assert.equal(await made.locator('.check-line').textContent(), 'The registry does not have this tag (made on this machine, or removed).');
    assert.equal(await made.locator('button[data-export]').textContent(), 'Into a zip');
    const persian = (await visibleTexts(page, ownTextSkip)).filter((t) => arabicScriptRe.test(t));
    assert.deepEqual(persian, [], 'no Persian text on the English page');
    await shoot(page, 'en-desktop-ollama.png');
    await page.setViewportSize(phone);
    await shoot(page, 'en-phone-ollama.png');
    await page.setViewportSize(desktop);
    const foreign = requests.filter((u) => !u.startsWith(server.url));
    assert.deepEqual(foreign, [], 'the page asks only its own server');
    assert.deepEqual(errors, []);
  });

  it('says so when the models folder cannot be read', async () => {
    // A folder only its owner may read: as root the server runs as nobody.
    const root = process.getuid && process.getuid() === 0;
    const base = await fs.mkdtemp(path.join(os.tmpdir(), 'omd-e2e-locked-'));
    try {
      await fs.chmod(base, 0o755);
      const locked = path.join(base, 'models');
      await writeModel(locked, host, 'library', 'tiny', '1', registry.manifest, registry.blobs);
      await fs.chmod(locked, root ? 0o700 : 0o000);
      const out = path.join(base, 'out');
      await fs.mkdir(out, { mode: 0o777 });
      await fs.chmod(out, 0o777);
      // nobody must reach the binary: a copy in the open folder.
      let runBin = bin;
      if (root) {
        runBin = path.join(base, 'omd');
        await fs.copyFile(bin, runBin);
        await fs.chmod(runBin, 0o755);
      }
      const other = await startOmd(runBin, out, {
        env: { OLLAMA_MODELS: locked, HOME: base },
        user: root ? { uid: 65534, gid: 65534 } : {},
      });
      try {
        for (const [lang, sentence] of [['fa', 'این برنامه اجازهٔ خواندن پوشهٔ مدل‌های Ollama را ندارد'], ['en', 'This program may not read the Ollama models folder']]) {
          await page.goto(`${other.url}?lang=${lang}#ollama`);
          const notice = page.locator('#ollama-notice');
          await notice.waitFor({ state: 'visible' });
          assert.ok((await notice.locator('.err-sentence').textContent()).startsWith(sentence), lang);
          await notice.locator('summary').click();
          assert.match(await notice.locator('.err-raw').textContent(), /permission denied/);
          assert.equal(await page.locator('#ollama-table').isVisible(), false);
          await shoot(page, `${lang}-desktop-ollama-unreadable.png`);
        }
      } finally {
        await other.stop();
      }
    } finally {
      await fs.chmod(path.join(base, 'models'), 0o755).catch(() => {});
      await fs.rm(base, { recursive: true, force: true });
    }
  });
});
