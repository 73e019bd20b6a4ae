// Launches Debian's Chromium through playwright-core (never a browser build
// downloaded by Playwright): CHROMIUM overrides the path.
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // launch() already gives every run a fresh temporary profile.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60_000,
  });
}

// launchWithExtension starts Chromium with the unpacked extension in dir
// loaded (a persistent context: extensions need a profile, made in
// profileDir), headless — Chromium's new headless mode runs extensions —
// and returns the context, the extension's service worker and its id.
// lang sets the browser's language (the extension's _locales follow it).
// Downloads are the browser's own, into downloadsDir: Playwright's
// download handling (CDP's setDownloadBehavior) would bypass the
// extension's downloads events, so it is set back to the default.
export async function launchWithExtension(dir, { lang = 'en', profileDir, downloadsDir }) {
  await fs.mkdir(path.join(profileDir, 'Default'), { recursive: true });
  await fs.mkdir(downloadsDir, { recursive: true });
  await fs.writeFile(path.join(profileDir, 'Default', 'Preferences'), JSON.stringify({
    download: { default_directory: downloadsDir, prompt_for_download: false },
  }));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    locale: lang === 'fa' ? 'fa-IR' : 'en-US',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--lang=${lang}`, `--disable-extensions-except=${dir}`, `--load-extension=${dir}`,
    ],
    timeout: 60_000,
  });
  let [worker] = context.serviceWorkers();
  if (!worker) worker = await context.waitForEvent('serviceworker', { timeout: 30_000 });
  const page = context.pages()[0] || await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'default' });
  return { context, worker, id: new URL(worker.url()).host };
}
