// The extension's side of the manager's API (docs/API.md, "Browser
// extensions"): where the manager is, the pairing, and sending links with
// what the browser knows about them. Shared by the service worker, the
// popup, the options page and the links page.

export const defaultServer = 'http://127.0.0.1:8080/';

// The settings kept in chrome.storage.local (this extension's only).
export const defaults = {
  server: defaultServer,
  key: '', // the pairing key (omdx_…): valid once the person allowed it
  pairId: '',
  code: '', // the six digits the person compares with the manager's page
  sendCookies: true,
  takeover: false, // take over browser downloads: off until the person turns it on
  takeoverTypes: ['archives', 'video', 'images', 'models'],
  customTypes: '', // "pdf, epub"
  minSizeMB: 0, // 0 = any size; else only downloads at least this big (when the size is known)
};

export async function settings() {
  const got = await chrome.storage.local.get(Object.keys(defaults));
  return { ...defaults, ...got };
}

export function save(changes) {
  return chrome.storage.local.set(changes);
}

// serverURL reads an address a person typed: "127.0.0.1:8080",
// "http://host:port/"; null when it is not one.
export function serverURL(text) {
  let t = String(text || '').trim();
  if (!t) return null;
  if (!/^[a-z]+:\/\//i.test(t)) t = `http://${t}`;
  try {
    const u = new URL(t);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return `${u.origin}/`;
  } catch {
    return null;
  }
}

const timeoutMs = 5000;

// call sends one request to the manager. It never throws: the answer is
// { ok, status, data, error }, status 0 when the manager cannot be reached.
export async function call(method, path, { body, key, server } = {}) {
  const s = server ? { server, key } : await settings();
  const headers = {};
  const k = key ?? s.key;
  if (k) headers.Authorization = `Bearer ${k}`;
  let res;
  try {
    res = await fetch(new URL(path, s.server), {
      method,
      headers,
      body: body ? new URLSearchParams(body) : undefined,
      credentials: 'omit', // the web UI's session cookie is not the extension's
      cache: 'no-store',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    return { ok: false, status: 0, data: null, error: String(e && e.message || e) };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: not the manager
  }
  return { ok: res.ok, status: res.status, data, error: data && data.error };
}

// ownOrigin is this extension's origin, which its key is bound to.
export function ownOrigin() {
  return new URL(chrome.runtime.getURL('')).origin;
}

// browserName is how the manager's page will name this browser.
export function browserName() {
  const ua = navigator.userAgent;
  const data = navigator.userAgentData;
  let name = '';
  if (data && data.brands) {
    const brand = data.brands.find((b) => !/not.?a.?brand/i.test(b.brand) && b.brand !== 'Chromium')
      || data.brands.find((b) => b.brand === 'Chromium');
    if (brand) name = `${brand.brand} ${brand.version}`;
  }
  if (!name) {
    const m = /(Firefox|Edg|OPR|Chrome|Chromium|Safari)\/(\d+)/.exec(ua);
    name = m ? `${{ Edg: 'Edge', OPR: 'Opera' }[m[1]] || m[1]} ${m[2]}` : 'Browser';
  }
  const os = (data && data.platform) || (/Windows/.test(ua) ? 'Windows' : /Mac OS/.test(ua) ? 'macOS'
    : /Android/.test(ua) ? 'Android' : /Linux/.test(ua) ? 'Linux' : '');
  return os ? `${name} · ${os}` : name;
}

// status is where the extension stands with the manager:
// { state: 'unreachable' | 'unpaired' | 'pending' | 'paired', … }.
export async function status() {
  const s = await settings();
  if (!s.key) {
    const r = await call('GET', '/api/extension/status', { server: s.server, key: '' });
    return { state: r.status === 0 ? 'unreachable' : 'unpaired', server: s.server };
  }
  const r = await call('GET', '/api/extension/status', s);
  if (r.status === 0) return { state: 'unreachable', server: s.server };
  if (r.ok && r.data && (r.data.state === 'paired' || r.data.state === 'pending')) {
    return { ...r.data, server: s.server, code: s.code };
  }
  return { state: 'unpaired', server: s.server, error: r.error };
}

// requestPairing asks the manager to pair this browser, keeps the key and
// the code, and opens the manager's page where the person allows it.
export async function requestPairing() {
  const s = await settings();
  const r = await call('POST', '/api/extension/pair', {
    server: s.server, key: '', body: { name: browserName(), origin: ownOrigin() },
  });
  if (!r.ok) return r;
  await save({ key: r.data.key, pairId: r.data.id, code: r.data.code });
  await chrome.tabs.create({ url: new URL(r.data.confirm_url, s.server).href });
  return r;
}

// unpair tells the manager to forget this browser, and forgets the key.
export async function unpair() {
  const s = await settings();
  if (s.key) await call('POST', '/api/extension/unpair', s);
  await save({ key: '', pairId: '', code: '' });
}

// cookieHeader is the Cookie header this browser would send to url, from
// the cookie store of the tab the link was in ('' without permission).
export async function cookieHeader(url, storeId) {
  if (!chrome.cookies) return '';
  let cookies;
  try {
    cookies = await chrome.cookies.getAll(storeId ? { url, storeId } : { url });
  } catch {
    return '';
  }
  // As browsers order them: longer paths first, then older ones.
  cookies.sort((a, b) => (b.path || '').length - (a.path || '').length);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

// send hands links to the manager: for each URL the cookies the browser has
// for it (when the person allows it), the page's referrer and this
// browser's user-agent. Links with the same cookies go in one request.
// Model names (from ollama.com links) go without any of it.
// The answer is { ok, status, added, error }.
export async function send(items, { referrer = '', storeId } = {}) {
  const s = await settings();
  const groups = new Map(); // cookie header → urls
  const models = [];
  for (const it of items) {
    if (it.model) {
      models.push(it.model);
      continue;
    }
    const cookie = s.sendCookies ? await cookieHeader(it.url, storeId) : '';
    if (!groups.has(cookie)) groups.set(cookie, []);
    groups.get(cookie).push(it.url);
  }
  const requests = [...groups].map(([cookie, urls]) => {
    const body = new URLSearchParams();
    for (const u of urls) body.append('url', u);
    if (cookie) body.set('cookie', cookie);
    if (/^https?:/i.test(referrer)) body.set('referrer', referrer);
    body.set('user_agent', navigator.userAgent);
    return body;
  });
  if (models.length) {
    const body = new URLSearchParams();
    for (const m of models) body.append('url', m);
    requests.push(body);
  }
  let added = 0;
  let last = { ok: true, status: 201 };
  for (const body of requests) {
    const r = await call('POST', '/api/download/add', { ...s, body });
    if (!r.ok) return { ...r, added };
    added += (r.data && r.data.downloads || []).length;
    last = r;
  }
  return { ok: true, status: last.status, added };
}
