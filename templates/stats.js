// The Statistics tab: the totals, bytes per day as an SVG chart drawn at
// the box's own width, the top domains and file types.
import { $, h, svg, bidi, setFill } from './dom.js';
import { I } from './state.js';
import { api } from './api.js';
import { reportError } from './toast.js';

export let lastDaily = null;

export async function loadStats() {
  let s;
  try {
    s = await api('GET', '/api/statistics');
  } catch (e) {
    reportError(e, I.t('toast.statsUnread'));
    return;
  }
  s = s || {};
  const card = (label, value, cls) => h('div', { class: `stat-card ${cls || ''}` },
    h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }));
  $('stat-cards').replaceChildren(
    card(I.t('stats.total'), I.num(s.total_files || 0)),
    card(I.t('stats.bytes'), I.bytes(s.total_bytes || 0)),
    card(I.t('stats.completed'), I.num(s.completed || 0), 'ok'),
    card(I.t('stats.failed'), I.num(s.failed || 0), 'err'),
    card(I.t('stats.canceled'), I.num(s.canceled || 0)),
    card(I.t('stats.avgSpeed'), I.speed(s.average_speed || 0)));
  const rec = $('stats-recovered');
  rec.hidden = !s.recovered_from;
  if (s.recovered_from) rec.replaceChildren(...I.tn('stats.recovered', { path: h('bdi', { dir: 'ltr', text: s.recovered_from }) }));
  lastDaily = s.daily || [];
  drawDaily($('daily-chart'), lastDaily);
  drawBars($('stat-domains'), (s.domains || []).map((d) => ({ label: d.domain, count: d.count, bytes: d.bytes })));
  drawBars($('stat-types'), (s.file_types || []).map((d) => ({ label: d.type === 'model' ? I.t('kind.model') : (d.type || I.t('kind.noext')), count: d.count, bytes: d.bytes })));
}

function drawBars(ol, items) {
  if (!items.length) {
    ol.replaceChildren(h('li', {}, h('span', { class: 'empty-line', text: I.t('stats.noData') })));
    return;
  }
  const max = Math.max(1, ...items.map((i) => i.bytes || 0));
  ol.replaceChildren(...items.slice(0, 8).map((i) => {
    const fill = h('div', { class: 'progress-fill' });
    setFill(fill, Math.max(0.02, (i.bytes || 0) / max));
    return h('li', {},
      bidi(i.label, 'bar-label'),
      h('span', { class: 'bar-value', text: I.t('stats.barValue', { size: I.bytes(i.bytes || 0), n: i.count || 0, count: I.num(i.count || 0) }) }),
      h('div', { class: 'progress', 'aria-hidden': 'true' }, fill));
  }));
}

// drawDaily draws bytes per day as SVG bars. Time runs in the reading
// direction: the oldest day at the start (right in RTL), today at the end.
export function drawDaily(box, daily) {
  // Drawn at the box's own width (1 unit = 1 px) so text keeps its size.
  const W = Math.max(280, Math.floor(box.clientWidth || 700));
  const H = 200;
  const top = 10;
  const bottom = 26;
  const axis = 86; // room for the y labels at the start side
  const plotW = W - axis - 4;
  const plotH = H - top - bottom;
  const rtl = I.lang.dir === 'rtl';
  // x0 is where the plot begins: after the axis labels in LTR, at 0 in RTL.
  const x0 = rtl ? 0 : axis + 4;
  const n = Math.max(daily.length, 1);
  const max = Math.max(0, ...daily.map((d) => d.bytes || 0));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H), role: 'img', direction: I.lang.dir });
  const peak = daily.reduce((a, d) => ((d.bytes || 0) > (a.bytes || 0) ? d : a), {});
  const total = daily.reduce((a, d) => a + (d.bytes || 0), 0);
  root.setAttribute('aria-label', max > 0
    ? I.t('stats.chartLabel', { days: I.num(daily.length), total: I.bytes(total), peak: I.bytes(peak.bytes), day: I.longDay(new Date(`${peak.date}T00:00:00Z`)) })
    : I.t('stats.chartEmpty', { days: I.num(daily.length) }));
  const scale = max > 0 ? max : 1;
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH - f * plotH;
    root.append(svg('line', { class: 'grid', x1: String(x0), x2: String(x0 + plotW), y1: String(y), y2: String(y) }));
    // 'start' is the right edge in RTL text and the left edge in LTR.
    const t = svg('text', { x: String(rtl ? W - 2 : 2), y: String(y + 4), 'text-anchor': 'start' });
    t.textContent = max > 0 ? I.bytes(f * max) : (f === 0 ? I.num(0) : '');
    root.append(t);
  }
  const slot = plotW / n;
  const bw = Math.max(2, slot * 0.66);
  daily.forEach((d, i) => {
    const bytes = d.bytes || 0;
    const bh = bytes > 0 ? Math.max(2, (bytes / scale) * plotH) : 2;
    // i = 0 is the oldest day: at the start of the reading direction.
    const x = rtl ? plotW - (i + 1) * slot + (slot - bw) / 2 : x0 + i * slot + (slot - bw) / 2;
    const rect = svg('rect', {
      class: bytes > 0 ? 'bar' : 'bar zero', x: x.toFixed(1), y: (top + plotH - bh).toFixed(1),
      width: bw.toFixed(1), height: bh.toFixed(1), rx: '2', 'data-date': d.date, 'data-bytes': String(bytes),
    });
    const day = new Date(`${d.date}T00:00:00Z`);
    const title = svg('title', {});
    title.textContent = I.t('stats.dayTitle', { day: I.longDay(day), size: I.bytes(bytes), n: d.count || 0, count: I.num(d.count || 0) });
    rect.append(title);
    root.append(rect);
    if ((daily.length - 1 - i) % (W < 500 ? 10 : 5) === 0) {
      const t = svg('text', { x: (x + bw / 2).toFixed(1), y: String(H - 8), 'text-anchor': 'middle' });
      t.textContent = I.day(day);
      root.append(t);
    }
  });
  box.replaceChildren(root);
}
