// A local origin for the browser tests: deterministic bytes over HTTP on
// 127.0.0.1, with Range/If-Range support and an optional throttle so that a
// download stays visibly in progress for a while.
//
//   GET /data/<size>/<bytes per second, 0 = unthrottled>/<file name>
//   GET /status/<HTTP status>/<file name>   answers that status
//   GET /login                              sets the session cookie (HttpOnly) that
//   GET /private/<size>/<rate>/<file name>  needs (403 without it), else as /data
//   GET /page.html?links=<JSON list of paths>  a page of those links (with download attributes)
//
// Any other path answers 404, which is how a test makes a download fail.
import http from 'node:http';
import crypto from 'node:crypto';

const chunkSize = 16 * 1024;

// byteAt is the content of every file: a pattern that differs at every
// offset within a 64 KiB window, so a misplaced range is caught by the hash.
export function fillBytes(buf, offset) {
  for (let i = 0; i < buf.length; i++) {
    const p = offset + i;
    buf[i] = (p * 31 + (p >>> 16) * 7 + 11) & 0xff;
  }
  return buf;
}

export function contentSHA256(size) {
  const h = crypto.createHash('sha256');
  for (let off = 0; off < size; off += 1 << 20) {
    h.update(fillBytes(Buffer.alloc(Math.min(1 << 20, size - off)), off));
  }
  return h.digest('hex');
}

function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header || '');
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start;
  let end;
  if (m[1] === '') { // suffix range: the last N bytes
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'unsatisfiable';
  return { start, end };
}

// The session cookie /login sets and /private wants.
export const sessionCookie = { name: 'omd_e2e_session', value: 's3cret-e2e-session-value' };

function linksPage(req, res) {
  const q = new URL(req.url, 'http://x').searchParams;
  const links = JSON.parse(q.get('links') || '[]');
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const items = links.map((l, i) => `<li><a id="link-${i}" href="${esc(l.href)}"${l.download ? ' download' : ''}>${esc(l.text || l.href)}</a></li>`);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Links for the extension</title><ul>${items.join('')}</ul>`);
}

export async function startOrigin() {
  const requests = [];
  // The throttle is per file, over all its connections: a client that splits
  // a file into ranges must not make it finish sooner than the test expects.
  const nextSend = new Map(); // path → time (ms) the next chunk may leave
  const server = http.createServer((req, res) => {
    requests.push({
      method: req.method, url: req.url, range: req.headers.range || '', at: Date.now(),
      cookie: req.headers.cookie || '', referer: req.headers.referer || '', userAgent: req.headers['user-agent'] || '',
    });
    if (req.url.startsWith('/page.html')) {
      linksPage(req, res);
      return;
    }
    if (req.url === '/login') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'set-cookie': `${sessionCookie.name}=${sessionCookie.value}; Path=/; HttpOnly; SameSite=Lax`,
      });
      res.end('<!doctype html><title>Logged in</title><p>Logged in.</p>');
      return;
    }
    let url = req.url;
    if (url.startsWith('/private/')) {
      if (!(req.headers.cookie || '').split(/;\s*/).includes(`${sessionCookie.name}=${sessionCookie.value}`)) {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('log in first\n');
        return;
      }
      url = url.replace('/private/', '/data/');
    }
    const st = /^\/status\/(\d{3})\/[^/?]+$/.exec(req.url);
    if (st) {
      res.writeHead(Number(st[1]), { 'content-type': 'text/plain' });
      res.end(`status ${st[1]}\n`);
      return;
    }
    const m = /^\/data\/(\d+)\/(\d+)\/([^/?]+)$/.exec(url);
    if (!m || !['GET', 'HEAD'].includes(req.method)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    const size = Number(m[1]);
    const rate = Number(m[2]);
    const etag = `"${size}-${m[3]}"`;
    const headers = {
      'accept-ranges': 'bytes',
      etag,
      'last-modified': 'Wed, 25 Nov 2026 10:00:00 GMT',
      'content-type': 'application/octet-stream',
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const ifRange = req.headers['if-range'];
    const rangeOK = !ifRange || ifRange === etag || ifRange === headers['last-modified'];
    const range = rangeOK ? parseRange(req.headers.range, size) : null;
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      res.end();
      return;
    }
    if (range) {
      ({ start, end } = range);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    let off = start;
    let closed = false;
    res.on('close', () => { closed = true; });
    const send = () => {
      while (!closed && off <= end) {
        const n = Math.min(chunkSize, end - off + 1);
        if (rate > 0) {
          const now = Date.now();
          const at = Math.max(now, nextSend.get(req.url) || 0);
          nextSend.set(req.url, at + (n / rate) * 1000);
          if (at > now) {
            setTimeout(() => { if (!closed) write(n); }, at - now);
            return;
          }
        }
        if (!write(n)) return;
      }
    };
    // write sends n bytes and says whether send may go on at once.
    const write = (n) => {
      const ok = res.write(fillBytes(Buffer.alloc(n), off));
      off += n;
      if (off > end) { res.end(); return false; }
      if (rate > 0) { setImmediate(send); return false; }
      if (!ok) { res.once('drain', send); return false; }
      return true;
    };
    send();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    requests,
    url: (name, size, rate = 0) => `${base}/data/${size}/${rate}/${encodeURIComponent(name)}`,
    privateURL: (name, size, rate = 0) => `${base}/private/${size}/${rate}/${encodeURIComponent(name)}`,
    pageURL: (links) => `${base}/page.html?links=${encodeURIComponent(JSON.stringify(links))}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
