// The page's words and formats in one language. Every visible string comes
// from a language table (i18n/*.js); this file only knows how to look them
// up and how to write numbers, sizes, durations and dates the way that
// language does (Intl with the table's locale, calendar and digits).
//
// A table value is a string, or { one, other, … } chosen by the language's
// plural rules for params.n. Inside a string:
//   {name}      is replaced by params.name (text, or a DOM node with tn)
//   {{Ollama}}  is kept as written and isolated (<bdi dir="ltr">): a Latin
//               word inside a right-to-left sentence
//   [[Ctrl]]    is a key name (<kbd>)
import { languages } from './i18n/index.js';

export { languages };

export const fallbackLanguage = languages[0].code;

export function findLanguage(code) {
  return languages.find((l) => l.code === code) || null;
}

export function makeI18n(lang) {
  const plural = new Intl.PluralRules(lang.locale);
  const nf = new Intl.NumberFormat(lang.locale, { numberingSystem: lang.digits });
  const nf1 = new Intl.NumberFormat(lang.locale, { numberingSystem: lang.digits, maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat(lang.locale, { numberingSystem: lang.digits, minimumIntegerDigits: 2, useGrouping: false });
  const pctFmt = new Intl.NumberFormat(lang.locale, { numberingSystem: lang.digits, style: 'percent', maximumFractionDigits: 0 });
  const dateOpts = { calendar: lang.calendar, numberingSystem: lang.digits };
  const dateTimeFmt = new Intl.DateTimeFormat(lang.locale, { ...dateOpts, dateStyle: 'medium', timeStyle: 'short', hourCycle: 'h23' });
  const clockFmt = new Intl.DateTimeFormat(lang.locale, { ...dateOpts, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const weekdayFmt = new Intl.DateTimeFormat(lang.locale, { ...dateOpts, weekday: 'long' });
  const dayFmt = new Intl.DateTimeFormat(lang.locale, { ...dateOpts, month: 'short', day: 'numeric', timeZone: 'UTC' });
  const longDayFmt = new Intl.DateTimeFormat(lang.locale, { ...dateOpts, dateStyle: 'full', timeZone: 'UTC' });

  function raw(key, params) {
    let v = lang.strings[key];
    if (v === undefined) {
      // A missing key is a bug in a table: say so loudly in the console,
      // and show the key rather than another language's words.
      console.error(`i18n: "${key}" missing in ${lang.code}`);
      return key;
    }
    if (typeof v === 'object') {
      const n = params && typeof params.n === 'number' ? params.n : 0;
      v = v[plural.select(n)] ?? v.other;
    }
    return v;
  }

  // t is the text of a key with its params, for attributes and plain text.
  function t(key, params) {
    return raw(key, params)
      .replace(/\{\{(.*?)\}\}/g, '$1')
      .replace(/\[\[(.*?)\]\]/g, '$1')
      .replace(/\{(\w+)\}/g, (m, p) => (params && p in params ? String(textOf(params[p])) : m));
  }

  // tn is the same as nodes: params may be DOM nodes (an isolated name), and
  // {{…}} and [[…]] become <bdi> and <kbd>.
  const tn = (key, params) => rich(raw(key, params), params);

  function rich(s, params) {
    const out = [];
    const re = /\{\{(.*?)\}\}|\[\[(.*?)\]\]|\{(\w+)\}/g;
    let last = 0;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      if (m.index > last) out.push(document.createTextNode(s.slice(last, m.index)));
      if (m[1] !== undefined) {
        const b = document.createElement('bdi');
        b.dir = 'ltr';
        b.textContent = m[1];
        out.push(b);
      } else if (m[2] !== undefined) {
        const k = document.createElement('kbd');
        k.textContent = m[2];
        out.push(k);
      } else {
        const v = params ? params[m[3]] : undefined;
        if (v instanceof Node) out.push(v);
        else out.push(document.createTextNode(v === undefined ? m[0] : String(v)));
      }
      last = re.lastIndex;
    }
    if (last < s.length) out.push(document.createTextNode(s.slice(last)));
    return out;
  }

  const has = (key) => key in lang.strings;
  const num = (n) => nf.format(n);

  function bytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return t('unit.unknown');
    let i = 0;
    while (n >= 1024 && i < lang.units.length - 1) { n /= 1024; i++; }
    return t('unit.size', { n: i === 0 ? nf.format(Math.round(n)) : nf1.format(n), unit: lang.units[i] });
  }

  // progressBytes says "1.5 of 64 MB" when both share a unit.
  function progressBytes(done, total) {
    const d = bytes(done);
    const all = bytes(total);
    const unitOf = (x) => x.slice(x.lastIndexOf(' ') + 1);
    const dn = unitOf(d) === unitOf(all) ? d.slice(0, d.lastIndexOf(' ')) : d;
    return t('unit.of', { done: dn, total: all });
  }

  const speed = (bps) => t('unit.speed', { size: bytes(bps > 0 ? bps : 0) });

  function duration(sec) {
    if (typeof sec !== 'number' || !Number.isFinite(sec) || sec < 0) return '—';
    sec = Math.round(sec);
    if (sec < 60) return t('dur.s', { n: sec, s: num(sec) });
    const d = Math.floor(sec / 86400);
    const h = Math.floor((sec % 86400) / 3600);
    const m = Math.floor((sec % 3600) / 60);
    const s = sec % 60;
    if (d > 0) return h ? t('dur.dh', { d: num(d), h: num(h) }) : t('dur.d', { n: d, d: num(d) });
    if (h > 0) return m ? t('dur.hm', { h: num(h), m: num(m) }) : t('dur.h', { n: h, h: num(h) });
    // Seconds stop mattering once it is ten minutes or more.
    return s && m < 10 ? t('dur.ms', { m: num(m), s: num(s) }) : t('dur.m', { n: m, m: num(m) });
  }

  function date(s) {
    const v = Date.parse(s);
    return Number.isFinite(v) && v > 0 ? dateTimeFmt.format(new Date(v)) : '—';
  }

  // when is a moment to come: "at 02:00" today, "on Tuesday at 02:00" later.
  function when(d) {
    const today = new Date();
    const same = d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
    return same ? t('when.today', { time: clockFmt.format(d) }) : t('when.day', { day: weekdayFmt.format(d), time: clockFmt.format(d) });
  }

  // clock writes "HH:MM" (the server's schedule) in the page's digits.
  function clock(hhmm) {
    const m = /^(\d{1,2}):(\d{2})$/.exec(hhmm || '');
    if (!m) return hhmm || '';
    const two = (x) => nf2.format(Number(x));
    return `${two(m[1])}:${two(m[2])}`;
  }

  const pct = (fraction) => pctFmt.format(fraction);

  return {
    lang, t, tn, rich, has, num, bytes, progressBytes, speed, duration, date, when, clock, pct,
    day: (d) => dayFmt.format(d),
    longDay: (d) => longDayFmt.format(d),
    errorSentence: (code) => lang.errors[code] || lang.errors.unknown,
    hasError: (code) => !!code && code in lang.errors,
    // sentence is a key's text as the table writes it ({{…}} kept), for
    // errorBlock, which makes the nodes.
    sentence: (key, params) => raw(key, params),
  };
}

// parseDigits reads a number typed with Persian, Arabic or Latin digits.
export function latinDigits(s) {
  return String(s)
    .replace(/[\u06F0-\u06F9]/g, (d) => String(d.charCodeAt(0) - 0x06F0))
    .replace(/[\u0660-\u0669]/g, (d) => String(d.charCodeAt(0) - 0x0660));
}

export function parseDigits(s) {
  const t = latinDigits(s).trim();
  return /^\d+$/.test(t) ? Number(t) : NaN;
}

function textOf(v) {
  return v instanceof Node ? v.textContent : v;
}
