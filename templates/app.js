// The web UI's behaviour: polls the REST API (docs/ARCHITECTURE.md) once a
// second while the page is visible and renders it in Persian, right to left.
// No framework and no build step: the DOM is built with createElement (never
// innerHTML), so names from servers cannot inject markup, and nothing here
// needs an inline script or style that the server's CSP forbids.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // ---------- formatting: Persian digits, units, Jalali dates ----------

  const nf = new Intl.NumberFormat('fa-IR');
  const nf1 = new Intl.NumberFormat('fa-IR', { maximumFractionDigits: 1 });
  const pctFmt = new Intl.NumberFormat('fa-IR', { style: 'percent', maximumFractionDigits: 0 });
  const dateTimeFmt = new Intl.DateTimeFormat('fa-IR', { calendar: 'persian', dateStyle: 'medium', timeStyle: 'short' });
  const dayFmt = new Intl.DateTimeFormat('fa-IR', { calendar: 'persian', month: 'short', day: 'numeric', timeZone: 'UTC' });
  const longDayFmt = new Intl.DateTimeFormat('fa-IR', { calendar: 'persian', dateStyle: 'full', timeZone: 'UTC' });
  const units = ['بایت', 'کیلوبایت', 'مگابایت', 'گیگابایت', 'ترابایت'];

  const num = (n) => nf.format(n);

  // parseDigits reads a number typed with Persian, Arabic or Latin digits.
  function parseDigits(s) {
    const t = String(s).trim()
      .replace(/[\u06F0-\u06F9]/g, (d) => String(d.charCodeAt(0) - 0x06F0))
      .replace(/[\u0660-\u0669]/g, (d) => String(d.charCodeAt(0) - 0x0660));
    return /^\d+$/.test(t) ? Number(t) : NaN;
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return 'نامعلوم';
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${i === 0 ? nf.format(Math.round(n)) : nf1.format(n)} ${units[i]}`;
  }

  // formatProgressBytes says "۱٫۵ از ۶۴ مگابایت" when both share a unit.
  function formatProgressBytes(done, total) {
    const d = formatBytes(done);
    const t = formatBytes(total);
    const unit = (x) => x.slice(x.lastIndexOf(' ') + 1);
    return unit(d) === unit(t) ? `${d.slice(0, d.lastIndexOf(' '))} از ${t}` : `${d} از ${t}`;
  }

  const formatSpeed = (bps) => `${formatBytes(bps > 0 ? bps : 0)}/ثانیه`;

  function formatDuration(sec) {
    if (typeof sec !== 'number' || !Number.isFinite(sec) || sec < 0) return '—';
    sec = Math.round(sec);
    if (sec < 60) return `${num(sec)} ثانیه`;
    const d = Math.floor(sec / 86400);
    const h = Math.floor((sec % 86400) / 3600);
    const m = Math.floor((sec % 3600) / 60);
    const s = sec % 60;
    if (d > 0) return h ? `${num(d)} روز و ${num(h)} ساعت` : `${num(d)} روز`;
    if (h > 0) return m ? `${num(h)} ساعت و ${num(m)} دقیقه` : `${num(h)} ساعت`;
    // Seconds stop mattering once it is ten minutes or more.
    return s && m < 10 ? `${num(m)} دقیقه و ${num(s)} ثانیه` : `${num(m)} دقیقه`;
  }

  function formatDate(s) {
    const t = Date.parse(s);
    return Number.isFinite(t) && t > 0 ? dateTimeFmt.format(new Date(t)) : '—';
  }

  const stateLabels = {
    queued: 'در صف',
    downloading: 'در حال دانلود',
    paused: 'متوقف',
    completed: 'تکمیل شد',
    failed: 'ناموفق',
    canceled: 'لغو شد',
    verifying: 'در حال بررسی',
    packaging: 'در حال بسته‌بندی',
  };
  const phaseLabels = {
    resolving: 'در حال یافتن مدل',
    downloading: 'در حال دانلود',
    verifying: 'در حال بررسی',
    packaging: 'در حال بسته‌بندی',
  };
  const historyStatusLabels = { completed: 'تکمیل‌شده', failed: 'ناموفق', canceled: 'لغوشده' };
  const finished = (s) => s === 'completed' || s === 'failed' || s === 'canceled';
  const running = (s) => s === 'downloading' || s === 'verifying' || s === 'packaging';

  // ---------- DOM helpers ----------

  // h builds an element: h('div', {class: 'x', text: 'y', onclick: f}, child...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function icon(name, cls) {
    const s = svg('svg', { class: cls ? `icon ${cls}` : 'icon', 'aria-hidden': 'true', focusable: 'false' });
    s.append(svg('use', { href: `#i-${name}` }));
    return s;
  }

  // bidi isolates a name or URL so Latin text keeps its own order in RTL.
  const bidi = (text, cls) => h('bdi', { class: cls, dir: 'auto', title: text, text });

  // readableURL shows a percent-encoded URL (a Persian file name) as text.
  function readableURL(s) {
    try { return decodeURI(s); } catch { return s; }
  }

  const jobName = (j) => j.name || nameFromSource(j.source);

  // nameFromSource is what to call a download whose file name is not known
  // (it failed before the server answered): the URL's last path segment.
  function nameFromSource(source) {
    try {
      const u = new URL(source);
      const last = u.pathname.split('/').filter(Boolean).pop();
      return last ? decodeURIComponent(last) : u.host;
    } catch {
      return source;
    }
  }

  function iconButton(name, label, attrs) {
    return h('button', { type: 'button', class: 'icon-btn', 'aria-label': label, title: label, ...attrs }, icon(name));
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  // A page opened as /?token=… (server listening beyond loopback) sends the
  // token along with every API call.
  const token = new URLSearchParams(location.search).get('token') || '';

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: 'application/json' } };
    if (token) opts.headers.Authorization = `Bearer ${token}`;
    if (body) opts.body = new URLSearchParams(body);
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      setOnline(false);
      throw new ApiError('ارتباط با سرور برقرار نیست.', 0);
    }
    setOnline(true);
    let data = null;
    try { data = await res.json(); } catch { /* an empty or non-JSON body */ }
    if (!res.ok) {
      throw new ApiError((data && data.error) || `سرور خطای ${num(res.status)} داد.`, res.status);
    }
    return data;
  }

  // ---------- toasts, banner, confirm ----------

  function toast(kind, title, text) {
    const box = $('toasts');
    while (box.children.length >= 3) box.firstElementChild.remove();
    const close = iconButton('close', 'بستن اعلان', { class: 'icon-btn sm' });
    const el = h('div', { class: `toast ${kind}`, role: kind === 'err' ? 'alert' : 'status' },
      h('div', { class: 'toast-body' },
        h('span', { class: 'toast-title', text: title }),
        text ? h('bdi', { class: 'toast-text', dir: 'auto', text }) : null),
      close);
    close.addEventListener('click', () => el.remove());
    box.append(el);
    setTimeout(() => el.remove(), kind === 'err' ? 9000 : 5000);
  }

  let online = true;
  function setOnline(ok) {
    if (ok === online) return;
    online = ok;
    $('offline').hidden = ok;
    document.body.classList.toggle('is-offline', !ok);
  }

  function confirmDialog(title, text, okLabel) {
    const dlg = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel || 'تأیید';
    dlg.returnValue = '';
    dlg.showModal();
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    });
  }

  function reportError(e, what) {
    if (e instanceof ApiError && e.status === 0) return; // the banner says it
    toast('err', what, e.message);
  }

  // ---------- tabs ----------

  const tabs = ['active', 'queue', 'library', 'history', 'stats'];
  let currentTab = 'active';

  function showTab(name, focus) {
    if (!tabs.includes(name)) name = 'active';
    currentTab = name;
    for (const t of tabs) {
      const tab = $(`tab-${t}`);
      const on = t === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.tabIndex = on ? 0 : -1;
      $(`panel-${t}`).hidden = !on;
    }
    if (focus) $(`tab-${name}`).focus();
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    refreshTab();
  }

  function refreshTab() {
    if (currentTab === 'library') { loadLibrary(); loadMirror(); }
    else if (currentTab === 'history') loadHistory();
    else if (currentTab === 'stats') loadStats();
  }

  function onTabKey(e) {
    const i = tabs.indexOf(currentTab);
    // In RTL the next tab is to the left.
    const rtl = getComputedStyle(document.documentElement).direction === 'rtl';
    let j = -1;
    if (e.key === 'ArrowLeft') j = rtl ? i + 1 : i - 1;
    else if (e.key === 'ArrowRight') j = rtl ? i - 1 : i + 1;
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = tabs.length - 1;
    else return;
    e.preventDefault();
    showTab(tabs[(j + tabs.length) % tabs.length], true);
  }

  // ---------- downloads: polling and rendering ----------

  let jobs = [];
  let known = null; // id → state at the previous poll; null before the first
  const selected = { active: new Set(), queue: new Set() };
  let pollTimer = 0;
  let polling = false;
  let pollAgain = false;
  let concurrencyPending = false;

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = 0;
    if (document.visibilityState === 'visible') pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    clearTimeout(pollTimer);
    pollTimer = 0;
    if (document.visibilityState !== 'visible') return;
    if (polling) { pollAgain = true; return; }
    polling = true;
    try {
      const data = await api('GET', '/api/downloads');
      applyDownloads(data);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 0)) console.warn('polling downloads:', e.message);
    } finally {
      polling = false;
      schedulePoll(pollAgain ? 0 : 1000);
      pollAgain = false;
    }
  }

  function applyDownloads(data) {
    jobs = (data && Array.isArray(data.downloads)) ? data.downloads.slice() : [];
    jobs.sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
    announceTransitions();
    const list = { active: jobs.filter((j) => j.state !== 'queued'), queue: jobs.filter((j) => j.state === 'queued') };
    renderList('active', list.active);
    renderList('queue', list.queue);
    setText($('count-active'), num(list.active.length));
    setText($('count-queue'), num(list.queue.length));
    const any = (pred) => jobs.some((j) => pred(j.state));
    $('pause-all').disabled = !any(bulkAllowed.pause);
    $('resume-all').disabled = !any(bulkAllowed.resume);
    $('cancel-all').disabled = !any(bulkAllowed.cancel);
    $('clear-finished').disabled = !any(finished);
    const runningCount = jobs.filter((j) => running(j.state)).length;
    // total_speed when the server sends it, else the sum of the rows.
    const totalSpeed = typeof data.total_speed === 'number' ? data.total_speed
      : jobs.reduce((a, j) => a + (running(j.state) && j.speed > 0 ? j.speed : 0), 0);
    setText($('total-speed'), formatSpeed(totalSpeed));
    setText($('running-count'), `${num(runningCount)} در جریان`);
    document.title = runningCount ? `(${num(runningCount)}) دانلودر مدل‌های Ollama` : 'دانلودر مدل‌های Ollama';
    const conc = $('concurrency');
    if (typeof data.concurrency === 'number' && !concurrencyPending && document.activeElement !== conc) {
      conc.value = num(data.concurrency);
    }
  }

  // announceTransitions toasts what changed since the previous poll: new
  // downloads (added elsewhere, e.g. the CLI or another tab), completions and
  // failures. The first poll only learns the current states.
  function announceTransitions() {
    const now = new Map(jobs.map((j) => [j.id, j.state]));
    if (known) {
      let finishedOne = false;
      const added = jobs.filter((j) => !known.has(j.id));
      if (added.length === 1) toast('info', 'دانلود تازه افزوده شد', jobName(added[0]));
      else if (added.length > 1) toast('info', `${num(added.length)} دانلود تازه افزوده شد`);
      for (const j of jobs) {
        const before = known.get(j.id);
        if (before === undefined) continue;
        if (before === j.state) continue;
        if (j.state === 'completed') {
          toast('ok', 'دانلود کامل شد', jobName(j));
          finishedOne = true;
        } else if (j.state === 'failed') {
          toast('err', 'دانلود ناموفق بود', `${jobName(j)}${j.error ? ` — ${j.error}` : ''}`);
          finishedOne = true;
        } else if (j.state === 'canceled') {
          finishedOne = true;
        }
      }
      if (finishedOne) refreshTab();
    }
    known = now;
  }

  const rows = new Map(); // `${tab}:${id}` → row element

  function renderList(tab, list) {
    const ul = $(`list-${tab}`);
    const sel = selected[tab];
    const ids = new Set(list.map((j) => j.id));
    for (const id of [...sel]) if (!ids.has(id)) sel.delete(id);
    for (const [key, row] of rows) {
      if (key.startsWith(`${tab}:`) && !ids.has(row.dataset.id)) {
        row.remove();
        rows.delete(key);
      }
    }
    list.forEach((j, i) => {
      const key = `${tab}:${j.id}`;
      let row = rows.get(key);
      if (!row) {
        row = buildRow(tab, j);
        rows.set(key, row);
      }
      updateRow(tab, row, j, i, list.length);
      // Move a row only when the order changed: moving a node drops its focus.
      if (ul.children[i] !== row) ul.insertBefore(row, ul.children[i] || null);
    });
    $(`empty-${tab}`).hidden = list.length > 0;
    ul.hidden = list.length === 0;
    updateBulk(tab, list);
  }

  function buildRow(tab, j) {
    const name = jobName(j);
    const check = h('input', { type: 'checkbox', class: 'row-check', 'aria-label': `انتخاب ${name}` });
    const fill = h('div', { class: 'progress-fill' });
    const bar = h('div', {
      class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-label': `پیشرفت ${name}`,
    }, fill);
    const row = h('li', { class: 'job', 'data-id': j.id },
      h('div', { class: 'job-sel' }, check),
      h('div', { class: 'job-main' },
        h('div', { class: 'job-title' },
          h('span', { class: `job-kind ${j.kind === 'model' ? 'model' : ''}`, title: j.kind === 'model' ? 'مدل' : 'فایل' },
            icon(j.kind === 'model' ? 'model' : 'file')),
          h('div', { class: 'job-name-wrap' }, bidi(name, 'job-name'), bidi(readableURL(j.source), 'job-source')),
          h('span', { class: 'badge' })),
        h('div', { class: 'job-progress-line' }, bar, h('span', { class: 'job-pct' })),
        h('p', { class: 'job-error', hidden: true })),
      h('div', { class: 'job-size' }),
      h('div', { class: 'job-speed' }, h('span', { class: 'speed' }), h('span', { class: 'job-eta' }),
        h('select', {
          class: 'job-limit', 'data-id': j.id, hidden: true,
          'aria-label': `محدودیت سرعت این دانلود: ${name}`, title: 'محدودیت سرعت همین دانلود',
        })),
      h('div', { class: 'job-actions' }));
    check.addEventListener('change', () => {
      if (check.checked) selected[tab].add(j.id); else selected[tab].delete(j.id);
      row.classList.toggle('selected', check.checked);
      updateBulk(tab);
    });
    return row;
  }

  function updateRow(tab, row, j, index, count) {
    const name = jobName(j);
    const q = (cls) => row.querySelector(cls);
    row.dataset.state = j.state;
    const nameEl = q('.job-name');
    if (nameEl.textContent !== name) { nameEl.textContent = name; nameEl.title = name; }

    const badge = q('.badge');
    const label = j.kind === 'model' && running(j.state) && phaseLabels[j.phase] ? phaseLabels[j.phase] : (stateLabels[j.state] || j.state);
    setText(badge, label);
    badge.className = `badge ${j.state}`;

    const total = j.bytes_total;
    const hasTotal = total > 0;
    const pct = j.state === 'completed' ? 100 : (hasTotal ? Math.min(100, (j.bytes_done / total) * 100) : 0);
    const bar = q('.progress');
    bar.className = `progress ${j.state}${!hasTotal && running(j.state) ? ' indeterminate' : ''}`;
    if (hasTotal || j.state === 'completed') {
      bar.setAttribute('aria-valuenow', String(Math.floor(pct)));
      bar.setAttribute('aria-valuetext', pctFmt.format(pct / 100));
    } else {
      bar.removeAttribute('aria-valuenow');
      bar.setAttribute('aria-valuetext', 'نامعلوم');
    }
    q('.progress-fill').style.width = `${hasTotal || j.state === 'completed' ? pct : 0}%`;
    setText(q('.job-pct'), hasTotal || j.state === 'completed' ? pctFmt.format(Math.floor(pct) / 100) : '');

    const err = q('.job-error');
    err.hidden = !j.error;
    setText(err, j.error || '');

    let size;
    if (j.state === 'completed') size = formatBytes(hasTotal ? total : j.bytes_done);
    else if (hasTotal) size = formatProgressBytes(j.bytes_done, total);
    else size = j.bytes_done > 0 ? formatBytes(j.bytes_done) : '—';
    setText(q('.job-size'), size);

    const isRunning = running(j.state);
    setText(q('.speed'), isRunning ? formatSpeed(j.speed) : '');
    let eta = '';
    if (isRunning) eta = j.eta_seconds >= 0 ? `${formatDuration(j.eta_seconds)} مانده` : 'زمان نامعلوم';
    else if (j.state === 'completed' && j.finished_at) eta = formatDate(j.finished_at);
    else if (j.state === 'queued') eta = `نوبت ${num(index + 1)} در صف`;
    setText(q('.job-eta'), eta);

    // A download's own speed limit, for what has not finished yet.
    const limitSel = q('.job-limit');
    const rate = typeof j.limit_rate === 'number' ? j.limit_rate : 0;
    limitSel.hidden = typeof j.limit_rate !== 'number' || finished(j.state);
    if (!limitSel.hidden && limitSel.dataset.rate !== String(rate) && document.activeElement !== limitSel) {
      limitSel.dataset.rate = String(rate);
      const values = limitChoices.includes(rate) ? limitChoices : [...limitChoices, rate].sort((a, b) => a - b);
      limitSel.replaceChildren(...values.map((v) => h('option', { value: String(v), text: v ? `حداکثر ${formatSpeed(v)}` : 'بی‌محدودیت' })));
      limitSel.value = String(rate);
    }

    const key = `${j.state}|${tab}|${index === 0}|${index === count - 1}|${j.path ? 1 : 0}`;
    if (row.dataset.actions !== key) {
      row.dataset.actions = key;
      const box = q('.job-actions');
      const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.action : '';
      box.replaceChildren(...actionButtons(tab, j, name, index, count));
      if (hadFocus) (box.querySelector(`[data-action="${hadFocus}"]`) || box.querySelector('button, a') || row.querySelector('.row-check')).focus();
    }
    const check = q('.row-check');
    check.checked = selected[tab].has(j.id);
    row.classList.toggle('selected', check.checked);
  }

  function actionButtons(tab, j, name, index, count) {
    const b = (action, iconName, label, extra) => iconButton(iconName, `${label}: ${name}`, { 'data-action': action, ...extra });
    const out = [];
    if (tab === 'queue') {
      out.push(
        b('top', 'top', 'به اول صف', { disabled: index === 0 }),
        b('up', 'up', 'یکی بالاتر', { disabled: index === 0 }),
        b('down', 'down', 'یکی پایین‌تر', { disabled: index === count - 1 }),
        b('bottom', 'bottom', 'به آخر صف', { disabled: index === count - 1 }),
        h('span', { class: 'sep', 'aria-hidden': 'true' }));
    }
    switch (j.state) {
      case 'queued':
      case 'downloading':
        out.push(b('pause', 'pause', 'توقف'), b('cancel', 'stop', 'لغو', { class: 'icon-btn danger' }));
        break;
      case 'verifying':
      case 'packaging':
        out.push(b('cancel', 'stop', 'لغو', { class: 'icon-btn danger' }));
        break;
      case 'paused':
        out.push(b('resume', 'play', 'ادامه'), b('cancel', 'stop', 'لغو', { class: 'icon-btn danger' }));
        break;
      case 'failed':
      case 'canceled':
        out.push(b('retry', 'retry', 'تلاش دوباره'), b('remove', 'trash', 'حذف از فهرست', { class: 'icon-btn danger' }));
        break;
      case 'completed':
        if (j.path) {
          const label = `دریافت فایل: ${name}`;
          out.push(h('a', { class: 'icon-btn', href: fileURL(j.path), download: '', 'aria-label': label, title: label, 'data-action': 'open' }, icon('download')));
        }
        out.push(
          b('remove', 'trash', 'حذف از فهرست'),
          b('remove-file', 'file-x', 'حذف از فهرست و پاک کردن فایل', { class: 'icon-btn danger' }));
        break;
      default:
        break;
    }
    return out;
  }

  function fileURL(path) {
    return `/api/library/file/${String(path).split('/').map(encodeURIComponent).join('/')}`;
  }

  async function doAction(id, action, quiet) {
    const j = jobs.find((x) => x.id === id);
    const name = j ? jobName(j) : id;
    const base = `/api/download/${encodeURIComponent(id)}`;
    try {
      switch (action) {
        case 'pause': case 'resume': case 'cancel': case 'retry':
          await api('POST', `${base}/${action}`);
          break;
        case 'remove':
          await api('POST', `${base}/remove`, { delete_file: 'false' });
          break;
        case 'remove-file':
          if (!quiet && !await confirmDialog('پاک کردن فایل', `فایل «${name}» از دیسک پاک می‌شود. این کار برگشت‌پذیر نیست.`, 'پاک کن')) return;
          await api('POST', `${base}/remove`, { delete_file: 'true' });
          break;
        case 'top': case 'up': case 'down': case 'bottom':
          await api('POST', `${base}/move`, { to: action });
          break;
        default:
          return;
      }
    } catch (e) {
      if (!quiet) reportError(e, `«${name}»: کار انجام نشد`);
      throw e;
    } finally {
      if (!quiet) poll();
    }
  }

  async function onListChange(e) {
    const sel = e.target.closest('select.job-limit');
    if (!sel) return;
    const j = jobs.find((x) => x.id === sel.dataset.id);
    const name = j ? jobName(j) : sel.dataset.id;
    try {
      await api('POST', `/api/download/${encodeURIComponent(sel.dataset.id)}/limit`, { limit_rate: sel.value });
      const v = Number(sel.value);
      toast('info', `«${name}»`, v > 0 ? `سرعت حداکثر ${formatSpeed(v)}` : 'بدون محدودیت سرعت');
    } catch (err) {
      reportError(err, `«${name}»: محدودیت سرعت ذخیره نشد`);
    } finally {
      poll();
    }
  }

  function onListClick(e) {
    const btn = e.target.closest('button[data-action]');
    if (!btn) return;
    const row = btn.closest('li.job');
    doAction(row.dataset.id, btn.dataset.action).catch(() => {});
  }

  // ---------- selection and bulk actions ----------

  const bulkAllowed = {
    pause: (s) => s === 'queued' || s === 'downloading',
    resume: (s) => s === 'paused',
    retry: (s) => s === 'failed' || s === 'canceled',
    cancel: (s) => !finished(s),
    remove: (s) => finished(s),
    top: (s) => s === 'queued',
    bottom: (s) => s === 'queued',
  };

  function updateBulk(tab, list) {
    const items = list || (tab === 'queue' ? jobs.filter((j) => j.state === 'queued') : jobs.filter((j) => j.state !== 'queued'));
    const n = selected[tab].size;
    $(`bulk-${tab}`).hidden = n === 0;
    setText($(`bulk-count-${tab}`), `${num(n)} مورد انتخاب شده`);
    const all = $(`select-all-${tab}`);
    all.checked = n > 0 && n === items.length;
    all.indeterminate = n > 0 && n < items.length;
    all.disabled = items.length === 0;
    const states = items.filter((j) => selected[tab].has(j.id)).map((j) => j.state);
    for (const btn of $(`bulk-${tab}`).querySelectorAll('[data-bulk]')) {
      btn.disabled = !states.some(bulkAllowed[btn.dataset.bulk]);
    }
  }

  async function runBulk(tab, action) {
    const targets = jobs.filter((j) => selected[tab].has(j.id) && bulkAllowed[action](j.state));
    if (!targets.length) return;
    if (action === 'cancel' && !await confirmDialog('لغو دانلودها', `${num(targets.length)} دانلود لغو و دادهٔ نیمه‌کارهٔ آن‌ها پاک می‌شود.`, 'لغو کن')) return;
    // "top" walks the list bottom-up so the selection keeps its order.
    const ordered = action === 'top' ? targets.slice().reverse() : targets;
    let failed = 0;
    for (const j of ordered) {
      try { await doAction(j.id, action, true); } catch { failed++; }
    }
    if (action === 'remove') selected[tab].clear();
    if (failed) toast('err', 'بخشی از کار انجام نشد', `${num(failed)} مورد از ${num(targets.length)} مورد`);
    poll();
  }

  async function globalAction(which) {
    const labels = {
      'pause-all': ['همه متوقف شد', 'دانلود متوقف شد'],
      'resume-all': ['ادامهٔ همه', 'دانلود دوباره در صف رفت'],
      'cancel-all': ['همه لغو شد', 'دانلود لغو شد'],
      'clear-finished': ['فهرست مرتب شد', 'مورد پایان‌یافته از فهرست برداشته شد'],
    };
    if (which === 'cancel-all' && !await confirmDialog('لغو همهٔ دانلودها', 'همهٔ دانلودهای در جریان و در صف لغو می‌شوند و دادهٔ نیمه‌کاره پاک می‌شود.', 'همه را لغو کن')) return;
    try {
      const r = await api('POST', `/api/downloads/${which}`);
      const [title, unit] = labels[which];
      toast('info', title, `${num((r && r.count) || 0)} ${unit}`);
    } catch (e) {
      reportError(e, 'کار انجام نشد');
    }
    poll();
  }

  // ---------- add box ----------

  async function onAdd(e) {
    e.preventDefault();
    const errBox = $('add-error');
    errBox.hidden = true;
    const text = $('add-url').value.trim();
    const lines = text.split('\n').map((s) => s.trim()).filter(Boolean);
    const retriesText = $('add-retries').value.trim();
    const retries = retriesText === '' ? '' : parseDigits(retriesText);
    const sha = $('add-sha').value.trim().toLowerCase();
    const fail = (msg, field) => {
      errBox.textContent = msg;
      errBox.hidden = false;
      $(field).focus();
    };
    if (!lines.length) return fail('نشانی یک فایل یا نام یک مدل را بنویسید.', 'add-url');
    if (retries !== '' && !(retries >= 0 && retries <= 100)) return fail('تعداد تلاش دوباره باید عددی بین ۰ و ۱۰۰ باشد.', 'add-retries');
    if (sha && !/^[0-9a-f]{64}$/.test(sha)) return fail('چکیدهٔ SHA-256 باید ۶۴ نویسهٔ هگز (۰ تا ۹ و a تا f) باشد.', 'add-sha');
    if (sha && lines.length > 1) return fail('چکیدهٔ SHA-256 فقط برای یک فایل معنا دارد؛ یک نشانی بنویسید.', 'add-sha');
    const body = { url: lines.join('\n') };
    if (retries !== '') body.retries = String(retries);
    if (sha) body.sha256 = sha;
    const btn = $('add-submit');
    btn.disabled = true;
    try {
      const r = await api('POST', '/api/download/add', body);
      const added = (r && r.downloads) || [];
      if (known) for (const j of added) known.set(j.id, j.state);
      $('add-url').value = '';
      $('add-sha').value = '';
      toast('info', added.length > 1 ? `${num(added.length)} دانلود به صف افزوده شد` : 'دانلود به صف افزوده شد',
        added.length === 1 ? (jobName(added[0])) : '');
      if (!['active', 'queue'].includes(currentTab)) showTab('active');
    } catch (err) {
      fail(err.message, 'add-url');
    } finally {
      btn.disabled = false;
      poll();
    }
  }

  // ---------- settings ----------

  let concTimer = 0;
  function setConcurrency(n, now) {
    const input = $('concurrency');
    n = Math.max(1, Math.min(32, Math.round(n) || 1));
    input.value = num(n);
    concurrencyPending = true;
    clearTimeout(concTimer);
    concTimer = setTimeout(async () => {
      try {
        const s = await api('POST', '/api/settings', { concurrency: String(n) });
        if (s && typeof s.concurrency === 'number') input.value = num(s.concurrency);
        toast('info', 'تنظیمات ذخیره شد', `${input.value} دانلود هم‌زمان`);
      } catch (e) {
        reportError(e, 'تنظیمات ذخیره نشد');
      } finally {
        concurrencyPending = false;
      }
    }, now ? 0 : 500);
  }

  // Speed limits offered in the header (bytes per second; 0 = none).
  const limitChoices = [0, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 5 << 20, 10 << 20, 20 << 20, 50 << 20];

  function showLimit(rate) {
    const sel = $('limit-rate');
    const values = limitChoices.includes(rate) || !(rate > 0) ? limitChoices : [...limitChoices, rate].sort((a, b) => a - b);
    sel.replaceChildren(...values.map((v) => h('option', { value: String(v), text: v ? `حداکثر ${formatSpeed(v)}` : 'بدون محدودیت سرعت' })));
    sel.value = String(rate > 0 ? rate : 0);
  }

  async function setLimit() {
    const sel = $('limit-rate');
    try {
      const s = await api('POST', '/api/settings', { limit_rate: sel.value });
      const rate = s && typeof s.limit_rate === 'number' ? s.limit_rate : Number(sel.value);
      showLimit(rate);
      toast('info', 'تنظیمات ذخیره شد', rate > 0 ? `سرعت کل حداکثر ${formatSpeed(rate)}` : 'بدون محدودیت سرعت');
    } catch (e) {
      reportError(e, 'محدودیت سرعت ذخیره نشد');
      loadSettings();
    }
  }

  async function loadSettings() {
    try {
      const s = await api('GET', '/api/settings');
      if (s) {
        if (typeof s.concurrency === 'number') $('concurrency').value = num(s.concurrency);
        // An older server without a speed limit setting: no control.
        $('limit-rate').closest('.limit').hidden = typeof s.limit_rate !== 'number';
        if (typeof s.limit_rate === 'number') showLimit(s.limit_rate);
        if (s.output_dir) $('output-dir').textContent = s.output_dir;
        if (s.version) $('version').textContent = s.version;
      }
    } catch (e) {
      reportError(e, 'تنظیمات خوانده نشد');
    }
  }

  // ---------- library ----------

  async function loadLibrary() {
    let data;
    try {
      data = await api('GET', '/api/library');
    } catch (e) {
      reportError(e, 'کتابخانه خوانده نشد');
      return;
    }
    const files = (data && data.files) || [];
    const body = $('library-body');
    body.replaceChildren(...files.map((f) => {
      const label = `دریافت فایل: ${f.name}`;
      return h('tr', { 'data-path': f.path },
        h('td', { class: 'name-cell' },
          h('div', { class: 'job-title' },
            h('span', { class: `job-kind ${f.kind === 'model' ? 'model' : ''}` }, icon(f.kind === 'model' ? 'model' : 'file')),
            h('div', { class: 'job-name-wrap' },
              bidi(f.name, 'job-name'),
              f.path !== f.name ? bidi(f.path, 'job-source') : null))),
        h('td', { class: 'num', 'data-label': 'نوع' }, kindLabel(f.kind)),
        h('td', { class: 'num', 'data-label': 'اندازه', text: formatBytes(f.size) }),
        h('td', { class: 'num', 'data-label': 'تاریخ', text: formatDate(f.modified) }),
        h('td', { class: 'actions' },
          f.kind === 'model' ? h('button', { type: 'button', class: 'btn sm', 'data-install': f.path, title: `نصب ${f.name} در پوشهٔ مدل‌های Ollama` },
            icon('install'), h('span', null, 'نصب در ', h('bdi', { text: 'Ollama' }))) : null,
          h('a', { class: 'icon-btn', href: fileURL(f.path), download: '', 'aria-label': label, title: label }, icon('download')),
          iconButton('trash', `پاک کردن فایل: ${f.name}`, { class: 'icon-btn danger', 'data-delete': f.path })));
    }));
    $('library-table').hidden = files.length === 0;
    $('empty-library').hidden = files.length > 0;
    const total = files.reduce((a, f) => a + (f.size > 0 ? f.size : 0), 0);
    $('library-summary').textContent = files.length ? `${num(files.length)} فایل، روی هم ${formatBytes(total)}` : '';
  }

  // kindLabel: "model", a lower-case extension, or "file" (GET /api/library).
  function kindLabel(kind) {
    if (kind === 'model') return 'مدل';
    if (!kind || kind === 'file') return 'فایل';
    return h('bdi', { dir: 'ltr', text: kind.toUpperCase() });
  }

  // installModel puts a model zip into the Ollama models folder
  // (POST /api/library/install; the server picks $OLLAMA_MODELS or ~/.ollama/models).
  async function installModel(btn) {
    const path = btn.dataset.install;
    btn.disabled = true;
    try {
      const r = await api('POST', '/api/library/install', { path });
      toast('ok', 'مدل نصب شد', `${path} → ${r.models_dir}`);
    } catch (err) {
      reportError(err, 'مدل نصب نشد');
    } finally {
      btn.disabled = false;
    }
  }

  async function onLibraryClick(e) {
    const install = e.target.closest('button[data-install]');
    if (install) {
      installModel(install);
      return;
    }
    const btn = e.target.closest('button[data-delete]');
    if (!btn) return;
    const path = btn.dataset.delete;
    if (!await confirmDialog('پاک کردن فایل', `فایل «${path}» از دیسک پاک می‌شود. این کار برگشت‌پذیر نیست.`, 'پاک کن')) return;
    try {
      await api('DELETE', fileURL(path));
      toast('ok', 'فایل پاک شد', path);
    } catch (err) {
      reportError(err, 'فایل پاک نشد');
    }
    loadLibrary();
  }

  // ---------- model mirror ----------

  let mirrorRunning = false;

  function showMirror(m) {
    mirrorRunning = !!(m && m.running);
    $('mirror-info').hidden = !mirrorRunning;
    $('mirror-state').replaceChildren(...(mirrorRunning
      ? ['روشن است. روی رایانهٔ دیگر این فرمان را بزنید و نام مدل و برچسب آن را جایگزین کنید:']
      : ['رایانه‌های دیگر مدل‌های این پوشه را با ', h('bdi', { text: 'Ollama' }), ' مستقیم از این‌جا می‌گیرند.']));
    const toggle = $('mirror-toggle');
    toggle.setAttribute('aria-pressed', String(mirrorRunning));
    toggle.replaceChildren(icon(mirrorRunning ? 'pause' : 'play'), h('span', { text: mirrorRunning ? 'خاموش کردن' : 'روشن کردن' }));
    if (mirrorRunning) {
      $('mirror-address').textContent = m.address;
      $('mirror-command').textContent = m.pull_example;
    }
  }

  async function loadMirror() {
    try {
      showMirror(await api('GET', '/api/mirror'));
    } catch (e) {
      reportError(e, 'وضعیت اشتراک مدل‌ها خوانده نشد');
    }
  }

  async function toggleMirror() {
    const btn = $('mirror-toggle');
    btn.disabled = true;
    try {
      const m = await api('POST', mirrorRunning ? '/api/mirror/stop' : '/api/mirror/start', {});
      showMirror(m);
      toast(m.running ? 'ok' : 'info', m.running ? 'اشتراک مدل‌ها روشن شد' : 'اشتراک مدل‌ها خاموش شد', m.running ? m.address : '');
    } catch (e) {
      reportError(e, 'اشتراک مدل‌ها تغییر نکرد');
    } finally {
      btn.disabled = false;
    }
  }

  async function copyMirrorCommand() {
    const text = $('mirror-command').textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast('ok', 'فرمان رونوشت شد');
    } catch {
      // No clipboard (plain http on another host): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents($('mirror-command'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      toast('info', 'فرمان را با Ctrl+C رونوشت کنید');
    }
  }

  // ---------- history ----------

  const hist = { offset: 0, limit: 20, total: 0, status: '', q: '' };

  async function loadHistory() {
    const params = new URLSearchParams({ limit: String(hist.limit), offset: String(hist.offset) });
    if (hist.status) params.set('status', hist.status);
    if (hist.q) params.set('q', hist.q);
    let data;
    try {
      data = await api('GET', `/api/history?${params}`);
    } catch (e) {
      reportError(e, 'تاریخچه خوانده نشد');
      return;
    }
    const records = (data && data.records) || [];
    hist.total = (data && data.total) || 0;
    if (hist.offset > 0 && hist.offset >= hist.total) {
      hist.offset = Math.max(0, Math.floor((hist.total - 1) / hist.limit) * hist.limit);
      if (hist.total > 0) { loadHistory(); return; }
    }
    $('history-body').replaceChildren(...records.map((r) => {
      const name = r.file_name || nameFromSource(r.source);
      return h('tr', { 'data-id': r.id },
        h('td', { class: 'name-cell' },
          h('div', { class: 'job-name-wrap' },
            bidi(name, 'job-name'),
            r.source && r.source !== name ? bidi(readableURL(r.source), 'job-source') : null,
            r.error ? h('bdi', { class: 'err', dir: 'auto', text: r.error }) : null)),
        h('td', {}, h('span', { class: `badge ${r.status}`, text: historyStatusLabels[r.status] || r.status })),
        h('td', { class: 'num', 'data-label': 'اندازه', text: formatBytes(r.size) }),
        h('td', { class: 'num', 'data-label': 'سرعت', text: r.status === 'completed' ? formatSpeed(r.average_speed) : '—' }),
        h('td', { class: 'num', 'data-label': 'مدت', text: formatDuration(r.duration_seconds) }),
        h('td', { class: 'num', 'data-label': 'پایان', text: formatDate(r.finished_at) }),
        h('td', { class: 'actions' }, iconButton('trash', `حذف از تاریخچه: ${name}`, { class: 'icon-btn danger', 'data-delete': r.id })));
    }));
    const pages = Math.max(1, Math.ceil(hist.total / hist.limit));
    const page = Math.floor(hist.offset / hist.limit) + 1;
    $('history-table').hidden = records.length === 0;
    $('empty-history').hidden = records.length > 0;
    $('empty-history').firstElementChild.textContent = hist.q || hist.status ? 'موردی با این جست‌وجو پیدا نشد.' : 'تاریخچه خالی است.';
    $('history-page').textContent = `صفحهٔ ${num(page)} از ${num(pages)} (${num(hist.total)} مورد)`;
    $('history-prev').disabled = hist.offset === 0;
    $('history-next').disabled = hist.offset + hist.limit >= hist.total;
    $('history-clear').disabled = hist.total === 0 && !hist.q && !hist.status;
  }

  async function onHistoryClick(e) {
    const btn = e.target.closest('button[data-delete]');
    if (!btn) return;
    try {
      await api('DELETE', `/api/history/${encodeURIComponent(btn.dataset.delete)}`);
    } catch (err) {
      reportError(err, 'مورد حذف نشد');
    }
    loadHistory();
  }

  async function clearHistory() {
    if (!await confirmDialog('پاک کردن تاریخچه', 'همهٔ سوابق تاریخچه پاک می‌شوند. فایل‌های دانلودشده سر جایشان می‌مانند.', 'پاک کن')) return;
    try {
      await api('DELETE', '/api/history');
      toast('ok', 'تاریخچه پاک شد');
    } catch (e) {
      reportError(e, 'تاریخچه پاک نشد');
    }
    hist.offset = 0;
    loadHistory();
  }

  // ---------- statistics ----------

  async function loadStats() {
    let s;
    try {
      s = await api('GET', '/api/statistics');
    } catch (e) {
      reportError(e, 'آمار خوانده نشد');
      return;
    }
    s = s || {};
    const card = (label, value, cls) => h('div', { class: `stat-card ${cls || ''}` },
      h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }));
    $('stat-cards').replaceChildren(
      card('همهٔ دانلودها', num(s.total_files || 0)),
      card('حجم کل', formatBytes(s.total_bytes || 0)),
      card('تکمیل‌شده', num(s.completed || 0), 'ok'),
      card('ناموفق', num(s.failed || 0), 'err'),
      card('لغوشده', num(s.canceled || 0)),
      card('میانگین سرعت', formatSpeed(s.average_speed || 0)));
    const rec = $('stats-recovered');
    rec.hidden = !s.recovered_from;
    if (s.recovered_from) rec.textContent = `فایل تاریخچه خراب بود و کنار گذاشته شد: ${s.recovered_from}`;
    lastDaily = s.daily || [];
    drawDaily($('daily-chart'), lastDaily);
    drawBars($('stat-domains'), (s.domains || []).map((d) => ({ label: d.domain, count: d.count, bytes: d.bytes })));
    drawBars($('stat-types'), (s.file_types || []).map((d) => ({ label: d.type === 'model' ? 'مدل' : (d.type || 'بدون پسوند'), count: d.count, bytes: d.bytes })));
  }

  function drawBars(ol, items) {
    if (!items.length) {
      ol.replaceChildren(h('li', {}, h('span', { class: 'empty-line', text: 'هنوز داده‌ای نیست.' })));
      return;
    }
    const max = Math.max(1, ...items.map((i) => i.bytes || 0));
    ol.replaceChildren(...items.slice(0, 8).map((i) => {
      const fill = h('div', { class: 'progress-fill' });
      fill.style.width = `${Math.max(2, ((i.bytes || 0) / max) * 100)}%`;
      return h('li', {},
        bidi(i.label, 'bar-label'),
        h('span', { class: 'bar-value', text: `${formatBytes(i.bytes || 0)}، ${num(i.count || 0)} فایل` }),
        h('div', { class: 'progress', 'aria-hidden': 'true' }, fill));
    }));
  }

  // drawDaily draws bytes per day as SVG bars. Time runs in the reading
  // direction: the oldest day on the right, today on the left.
  let lastDaily = null;

  function drawDaily(box, daily) {
    // Drawn at the box's own width (1 unit = 1 px) so text keeps its size.
    const W = Math.max(280, Math.floor(box.clientWidth || 700));
    const H = 200;
    const top = 10;
    const bottom = 26;
    const axis = 86; // room for the y labels on the right
    const plotW = W - axis - 4;
    const plotH = H - top - bottom;
    const n = Math.max(daily.length, 1);
    const max = Math.max(0, ...daily.map((d) => d.bytes || 0));
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H), role: 'img', direction: 'rtl' });
    const peak = daily.reduce((a, d) => ((d.bytes || 0) > (a.bytes || 0) ? d : a), {});
    const total = daily.reduce((a, d) => a + (d.bytes || 0), 0);
    root.setAttribute('aria-label', max > 0
      ? `حجم دانلود روزانه در ${num(daily.length)} روز گذشته: روی هم ${formatBytes(total)}؛ بیشترین ${formatBytes(peak.bytes)} در ${longDayFmt.format(new Date(`${peak.date}T00:00:00Z`))}`
      : `در ${num(daily.length)} روز گذشته دانلودی نبوده است`);
    const scale = max > 0 ? max : 1;
    for (const f of [0, 0.5, 1]) {
      const y = top + plotH - f * plotH;
      root.append(svg('line', { class: 'grid', x1: '0', x2: String(plotW), y1: String(y), y2: String(y) }));
      // RTL text: 'start' is the right edge.
      const t = svg('text', { x: String(W - 2), y: String(y + 4), 'text-anchor': 'start' });
      t.textContent = max > 0 ? formatBytes(f * max) : (f === 0 ? num(0) : '');
      root.append(t);
    }
    const slot = plotW / n;
    const bw = Math.max(2, slot * 0.66);
    daily.forEach((d, i) => {
      const bytes = d.bytes || 0;
      const bh = bytes > 0 ? Math.max(2, (bytes / scale) * plotH) : 2;
      // i = 0 is the oldest day: draw it at the right end.
      const x = plotW - (i + 1) * slot + (slot - bw) / 2;
      const rect = svg('rect', {
        class: bytes > 0 ? 'bar' : 'bar zero', x: x.toFixed(1), y: (top + plotH - bh).toFixed(1),
        width: bw.toFixed(1), height: bh.toFixed(1), rx: '2', 'data-date': d.date, 'data-bytes': String(bytes),
      });
      const day = new Date(`${d.date}T00:00:00Z`);
      const title = svg('title', {});
      title.textContent = `${longDayFmt.format(day)}: ${formatBytes(bytes)}، ${num(d.count || 0)} فایل`;
      rect.append(title);
      root.append(rect);
      if ((daily.length - 1 - i) % (W < 500 ? 10 : 5) === 0) {
        const t = svg('text', { x: (x + bw / 2).toFixed(1), y: String(H - 8), 'text-anchor': 'middle' });
        t.textContent = dayFmt.format(day);
        root.append(t);
      }
    });
    box.replaceChildren(root);
  }

  // ---------- wiring ----------

  function init() {
    for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => showTab(t));
    document.querySelector('[role="tablist"]').addEventListener('keydown', onTabKey);

    $('add-form').addEventListener('submit', onAdd);
    $('add-url').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) $('add-form').requestSubmit();
    });

    for (const tab of ['active', 'queue']) {
      $(`list-${tab}`).addEventListener('click', onListClick);
      $(`list-${tab}`).addEventListener('change', onListChange);
      $(`select-all-${tab}`).addEventListener('change', (e) => {
        const items = tab === 'queue' ? jobs.filter((j) => j.state === 'queued') : jobs.filter((j) => j.state !== 'queued');
        selected[tab] = new Set(e.target.checked ? items.map((j) => j.id) : []);
        for (const row of $(`list-${tab}`).children) {
          const on = selected[tab].has(row.dataset.id);
          row.querySelector('.row-check').checked = on;
          row.classList.toggle('selected', on);
        }
        updateBulk(tab);
      });
      $(`bulk-${tab}`).addEventListener('click', (e) => {
        const btn = e.target.closest('[data-bulk]');
        if (btn) runBulk(tab, btn.dataset.bulk);
      });
    }
    for (const which of ['pause-all', 'resume-all', 'cancel-all', 'clear-finished']) {
      $(which).addEventListener('click', () => globalAction(which));
    }

    const conc = $('concurrency');
    $('conc-dec').addEventListener('click', () => setConcurrency((parseDigits(conc.value) || 2) - 1));
    $('conc-inc').addEventListener('click', () => setConcurrency((parseDigits(conc.value) || 0) + 1));
    conc.addEventListener('change', () => setConcurrency(parseDigits(conc.value), true));
    conc.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
        e.preventDefault();
        setConcurrency((parseDigits(conc.value) || 1) + (e.key === 'ArrowUp' ? 1 : -1));
      }
    });
    conc.addEventListener('keydown', (e) => { if (e.key === 'Enter') conc.blur(); });

    $('limit-rate').addEventListener('change', setLimit);
    showLimit(0);

    $('library-body').addEventListener('click', onLibraryClick);
    $('library-refresh').addEventListener('click', () => { loadLibrary(); loadMirror(); });
    $('mirror-toggle').addEventListener('click', toggleMirror);
    $('mirror-copy').addEventListener('click', copyMirrorCommand);

    $('history-body').addEventListener('click', onHistoryClick);
    $('history-clear').addEventListener('click', clearHistory);
    $('history-prev').addEventListener('click', () => { hist.offset = Math.max(0, hist.offset - hist.limit); loadHistory(); });
    $('history-next').addEventListener('click', () => { hist.offset += hist.limit; loadHistory(); });
    $('history-status').addEventListener('change', (e) => { hist.status = e.target.value; hist.offset = 0; loadHistory(); });
    let searchTimer = 0;
    $('history-search').addEventListener('input', (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { hist.q = e.target.value.trim(); hist.offset = 0; loadHistory(); }, 300);
    });

    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (currentTab === 'stats' && lastDaily) drawDaily($('daily-chart'), lastDaily); }, 150);
    });

    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        poll();
        refreshTab();
      } else {
        clearTimeout(pollTimer);
        pollTimer = 0;
      }
    });

    loadSettings();
    showTab(location.hash.slice(1) || 'active');
    poll();
  }

  init();
})();
