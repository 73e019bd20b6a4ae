#!/usr/bin/env node
// The page with 10,000 downloads in the queue (issue 18): how long the first
// render takes and how much main-thread time each update of the list costs.
//
//   node e2e/bench-rows.js [--rows 10000] [--updates 60] [--en] [--templates DIR]
//
// --templates serves another copy of the page (say, an older one checked
// out with `git archive`) for a before/after comparison; a page without
// the event stream is measured through its own polling.
//
// The page's own files (templates/) are served by a small stand-in for the
// server that answers the API with a queue of that size and pushes one
// event-stream update (a delta, as GET /api/events sends) whenever the
// benchmark asks: four downloads progress, and every fifth update one of
// them completes and the next queued one starts. This measures the page
// alone, not the Go server. Main-thread time comes from a Chromium trace:
// the renderer main thread's tasks (script, style, layout, paint) between
// marks, as CPU time of that thread (robust when the machine is busy with
// other work) and as wall time.
import http from 'node:http';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './lib/browser.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const templatesArg = process.argv.indexOf('--templates');
const templates = templatesArg > 0 ? path.resolve(process.argv[templatesArg + 1]) : path.join(here, '..', 'templates');

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const rows = arg('rows', 10_000);
const updates = arg('updates', 60);
const lang = process.argv.includes('--en') ? 'en' : 'fa';

const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.woff2': 'font/woff2', '.txt': 'text/plain' };

// The queue: the first four downloading, the rest queued.
const created = new Date('2026-11-25T10:00:00Z').toISOString();
const exts = ['iso', 'zip', 'gguf', 'mp4', 'pdf', 'tar.gz', 'bin'];
const jobs = Array.from({ length: rows }, (_, i) => ({
  id: `d-bench-${i}`,
  kind: i % 50 === 7 ? 'model' : 'file',
  source: i % 50 === 7 ? `llama3.2:${i}b` : `https://mirror.example.org/releases/2026/file-${i}.${exts[i % exts.length]}`,
  name: i % 50 === 7 ? `llama3.2:${i}b` : `file-${i}.${exts[i % exts.length]}`,
  path: '',
  state: i < 4 ? 'downloading' : 'queued',
  phase: '',
  bytes_done: 0,
  bytes_total: (64 + (i % 900)) << 20,
  speed: 0,
  eta_seconds: -1,
  error: '',
  error_code: '',
  retries: 3,
  limit_rate: 0,
  position: i,
  created_at: created,
  reused_bytes: 0,
  outcome: '',
  rev: 1,
}));
let rev = 1;
let nextToStart = 4;
// summary is what the server adds up for the header (GET /api/downloads).
function summary() {
  const s = { running: 0, queued: 0, paused: 0, failed: 0, completed: 0, canceled: 0, bytes_done: 0, bytes_total: 0, speed: 0, eta_seconds: -1 };
  for (const j of jobs) {
    if (j.state === 'downloading') { s.running++; s.speed += j.speed; } else s[j.state]++;
    if (j.state !== 'completed') { s.bytes_done += j.bytes_done; s.bytes_total += j.bytes_total; }
  }
  if (s.speed > 0) s.eta_seconds = Math.round((s.bytes_total - s.bytes_done) / s.speed);
  return s;
}
const envelope = (list, full) => ({
  rev, full, downloads: list, removed: [], order: null, concurrency: 4, total_speed: 0,
  summary: summary(), schedule: { start: '', end: '', open: true, next_start: '' },
});

// update moves the running downloads on; every fifth one finishes one.
function update(n) {
  rev++;
  const changed = [];
  for (const j of jobs) {
    if (j.state !== 'downloading') continue;
    j.bytes_done = Math.min(j.bytes_total, j.bytes_done + (3 << 20));
    j.speed = 3 << 20;
    j.eta_seconds = Math.round((j.bytes_total - j.bytes_done) / j.speed);
    j.rev = rev;
    changed.push(j);
  }
  if (n % 5 === 0 && nextToStart < jobs.length) {
    const done = changed[0];
    Object.assign(done, { state: 'completed', bytes_done: done.bytes_total, speed: 0, finished_at: new Date().toISOString() });
    const start = jobs[nextToStart++];
    Object.assign(start, { state: 'downloading', rev });
    changed.push(start);
  }
  return changed.map((j) => ({ ...j }));
}

const streams = new Set();
const server = http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/api/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(`event: downloads\ndata: ${JSON.stringify(envelope(jobs, true))}\n\n`);
    streams.add(res);
    req.on('close', () => streams.delete(res));
    return;
  }
  if (u.pathname === '/api/downloads') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(envelope(jobs, true)));
    return;
  }
  if (u.pathname === '/api/settings') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ concurrency: 4, limit_rate: 0, output_dir: '/bench', version: 'bench', schedule_start: '', schedule_end: '', schedule_next: '' }));
    return;
  }
  const file = u.pathname === '/' ? 'index.html' : u.pathname.slice(1);
  try {
    const data = await fs.readFile(path.join(templates, path.normalize(file)));
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(data);
  } catch {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (x) => Math.round(x * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// mainThreadTime sums the renderer main thread's tasks in a Chromium trace
// between two user-timing marks: CPU time (tdur, what the thread itself
// spent, whatever else the machine runs) and wall time (dur).
function mainThreadTasks(trace) {
  const events = trace.traceEvents;
  const marks = new Map();
  for (const e of events) {
    if (e.cat && e.cat.includes('blink.user_timing') && (e.name.startsWith('bench-') || e.name === 'omd:first-render' || e.name === 'navigationStart')) {
      if (!marks.has(e.name)) marks.set(e.name, e);
    }
  }
  const pid = marks.get('bench-0')?.pid ?? marks.get('omd:first-render')?.pid;
  const main = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === pid && e.args.name === 'CrRendererMain');
  const tasks = events.filter((e) => e.pid === pid && e.tid === main.tid && e.ph === 'X' && (e.name === 'ThreadControllerImpl::RunTask' || e.name === 'RunTask'))
    .sort((a, b) => a.ts - b.ts);
  // Top-level tasks only: a RunTask nested in another is counted once.
  // The benchmark's own marks (a task each) are left out.
  const markTimes = [...marks.values()].filter((m) => m.name.startsWith('bench-')).map((m) => m.ts);
  const top = [];
  let end = -1;
  for (const t of tasks) {
    if (t.ts < end) continue;
    end = t.ts + t.dur;
    if (!markTimes.some((m) => m >= t.ts && m <= end)) top.push(t);
  }
  return {
    marks,
    between(from, to) {
      let cpu = 0;
      let wall = 0;
      for (const t of top) {
        if (t.ts >= from && t.ts < to) { cpu += (t.tdur ?? t.dur); wall += t.dur; }
      }
      return { cpu: cpu / 1000, wall: wall / 1000 };
    },
  };
}

const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 850 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const mark = (name) => page.evaluate((n) => performance.mark(n), name);

  await browser.startTracing(page, { categories: ['toplevel', 'blink.user_timing', 'devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  await page.goto(`${base}?lang=${lang}`);
  // The page marks its first render; an older page without the mark is
  // taken as rendered when its first row is there.
  await page.waitForFunction(() => {
    if (performance.getEntriesByName('omd:first-render').length) return true;
    if (document.querySelector('li.job') && !performance.getEntriesByName('bench-first-row').length) performance.mark('bench-first-row');
    return document.querySelector('li.job') !== null;
  }, null, { timeout: 120_000, polling: 'raf' });
  const firstRender = await page.evaluate(() => (performance.getEntriesByName('omd:first-render')[0] || performance.getEntriesByName('bench-first-row')[0]).startTime);
  await sleep(300);
  const dom = await page.evaluate(() => ({ elements: document.getElementsByTagName('*').length, rows: document.querySelectorAll('#list-active li.job').length }));

  // Idle first: what the page costs when nothing changes.
  await mark('bench-idle');
  await sleep(1000);
  await mark('bench-0');
  for (let n = 1; n <= updates; n++) {
    const data = JSON.stringify(envelope(update(n), false));
    for (const st of streams) st.write(`event: downloads\ndata: ${data}\n\n`);
    await sleep(250); // one event is applied and rendered in the next frame
    await mark(`bench-${n}`);
  }
  // Scrolling a screen at a time through the list.
  for (let i = 1; i <= 20; i++) {
    await page.evaluate((y) => window.scrollTo(0, y), i * 20_000);
    await sleep(150);
    await mark(`bench-scroll-${i}`);
  }
  const domAfter = await page.evaluate(() => document.getElementsByTagName('*').length);
  const trace = mainThreadTasks(JSON.parse((await browser.stopTracing()).toString()));
  const ts = (name) => trace.marks.get(name).ts;
  const first = trace.between(ts('navigationStart') ?? 0, (trace.marks.has('omd:first-render') ? ts('omd:first-render') : ts('bench-first-row')) + 1);
  const idle = trace.between(ts('bench-idle'), ts('bench-0'));
  const costs = [];
  const stateCosts = [];
  for (let n = 1; n <= updates; n++) {
    const c = trace.between(ts(`bench-${n - 1}`), ts(`bench-${n}`));
    costs.push(c);
    if (n % 5 === 0) stateCosts.push(c);
  }
  const all = trace.between(ts('bench-0'), ts(`bench-${updates}`));
  const seconds = (ts(`bench-${updates}`) - ts('bench-0')) / 1e6;
  const scrolls = [];
  for (let i = 1; i <= 20; i++) scrolls.push(trace.between(ts(i === 1 ? `bench-${updates}` : `bench-scroll-${i - 1}`), ts(`bench-scroll-${i}`)));
  const stat = (xs, k) => `p50 ${round(pct(xs.map((x) => x[k]), 50))} ms, p99 ${round(pct(xs.map((x) => x[k]), 99))} ms, max ${round(Math.max(...xs.map((x) => x[k])))} ms`;

  console.log(`rows: ${rows} (${lang}), Chromium ${browser.version()}, load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs`);
  console.log(`first render: ${round(firstRender)} ms after navigation start (wall); main thread CPU ${round(first.cpu)} ms, wall ${round(first.wall)} ms in tasks`);
  console.log(`DOM: ${dom.elements} elements, ${dom.rows} rows rendered of ${rows}; after scrolling: ${domAfter} elements`);
  console.log(`idle 1 s: main thread CPU ${round(idle.cpu)} ms`);
  console.log(`update, main thread CPU (${costs.length}, every fifth with a state change): ${stat(costs, 'cpu')}`);
  console.log(`update, main thread wall: ${stat(costs, 'wall')}`);
  console.log(`  with a state change (${stateCosts.length}), CPU: ${stat(stateCosts, 'cpu')}`);
  console.log(`main thread CPU while updating: ${round(all.cpu / seconds)} ms per second (${round(seconds)} s)`);
  console.log(`scroll 20,000 px (${scrolls.length}), main thread CPU: ${stat(scrolls, 'cpu')}`);
  if (errors.length) console.log(`page errors: ${errors.join('; ')}`);
  const ok = first.cpu <= 1000 && pct(costs.map((c) => c.cpu), 99) <= 16;
  console.log(`${ok ? 'within' : 'OVER'} the targets (first render ≤ 1000 ms, each update ≤ 16 ms of main thread, CPU p99)`);
  process.exitCode = ok && !errors.length ? 0 : 1;
} finally {
  await browser.close();
  for (const st of streams) st.end();
  server.closeAllConnections();
  server.close();
}
