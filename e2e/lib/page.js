// Helpers the browser tests share: waiting with a deadline, calling the
// server from Node, reading what a person sees on the page, screenshots.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const shotDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');
export const desktop = { width: 1366, height: 850 };
export const phone = { width: 390, height: 844 };

// waitFor polls fn until it returns a truthy value, within a deadline.
export async function waitFor(what, fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// apiClient calls a server from Node (not from the page), as the page
// would: state-changing requests carry the server's own Origin.
export function apiClient(base) {
  return async function api(method, p, body, { ok = true } = {}) {
    const res = await fetch(new URL(p, base), {
      method,
      body: body ? new URLSearchParams(body) : undefined,
      headers: method === 'GET' ? {} : { Origin: new URL(base).origin },
    });
    const text = await res.text();
    if (ok) assert.ok(res.ok, `${method} ${p}: ${res.status} ${text}`);
    return ok ? JSON.parse(text) : { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

// visibleTexts is every text a person can see: rendered text nodes, with
// those inside the given selectors left out. The text inside a closed
// <details> is not rendered, so a folded detail is not "visible".
export function visibleTexts(page, skip = '') {
  return page.evaluate((skipSel) => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || !n.textContent.trim()) continue;
      if (el.closest('script, style, svg, textarea')) continue;
      if (skipSel && el.closest(skipSel)) continue;
      if (!el.getClientRects().length) continue; // not rendered
      if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true })) continue;
      out.push(n.textContent.trim());
    }
    return out;
  }, skip);
}

// The page's own text, outside isolated names (<bdi>), keys (<kbd>) and the
// language switch (the one word of the other language the page shows).
export const ownTextSkip = 'bdi, kbd, #lang-box, a[href="/fonts/OFL.txt"]';

export const latinRe = /[A-Za-z0-9]/;
export const arabicScriptRe = /[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]/;

// shoot saves a whole-page screenshot. The lists keep only the rows near
// the view in the DOM, so the viewport is first made as tall as the page:
// the picture then shows every row, as a very tall screen would.
export async function shoot(page, file) {
  const vp = page.viewportSize();
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  if (height > vp.height) {
    await page.setViewportSize({ width: vp.width, height: Math.min(height, 6000) });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }
  await page.screenshot({ path: path.join(shotDir, file), fullPage: true });
  if (height > vp.height) await page.setViewportSize(vp);
}

// tabPanel is the panel shown now; rows of the other tabs' lists may still
// be in the DOM, hidden.
export const shownRow = (page, name) => page.locator('[role="tabpanel"]:not([hidden]) li.job', { has: page.locator('.job-name', { hasText: name }) });

// openPage opens a page in a new context of browser with the given options
// (viewport, locale, timezoneId…), a 10 s default timeout, and every console
// error or uncaught exception of the page pushed onto errors.
export async function openPage(browser, options, errors) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return page;
}
