// The extension's pages in the browser's language (_locales/fa, _locales/en;
// English for any other): data-i18n="key" fills an element's text,
// data-i18n-title / data-i18n-placeholder / data-i18n-label its attributes.

export const t = (key, ...subs) => chrome.i18n.getMessage(key, subs.map(String)) || key;

// tNodes is t with elements in the places of $1, $2…: names from the
// outside world (an address) go in as isolated <bdi> elements, so that
// they read correctly inside text of the other direction.
export function tNodes(key, ...nodes) {
  const marks = nodes.map((_, i) => `\u0001${i}\u0002`);
  const out = [];
  for (const part of t(key, ...marks).split(/(\u0001\d+\u0002)/)) {
    const m = /^\u0001(\d+)\u0002$/.exec(part);
    if (m) out.push(nodes[Number(m[1])]);
    else if (part) out.push(document.createTextNode(part));
  }
  return out;
}

export function bdi(text) {
  const el = document.createElement('bdi');
  el.dir = 'ltr';
  el.textContent = text;
  return el;
}

export function localize(root = document) {
  const html = document.documentElement;
  html.lang = t('langCode');
  html.dir = t('dir'); // the language of the messages, which @@bidi_dir may not follow
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const [attr, data] of [['title', 'i18nTitle'], ['placeholder', 'i18nPlaceholder'], ['aria-label', 'i18nLabel']]) {
    for (const el of root.querySelectorAll(`[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`)) {
      el.setAttribute(attr, t(el.dataset[data]));
    }
  }
}

// Numbers, sizes and speeds as the language writes them (Persian digits in fa).
const units = () => [t('unitB'), t('unitKB'), t('unitMB'), t('unitGB'), t('unitTB')];

const locale = () => (t('langCode') === 'fa' ? 'fa-IR' : 'en-US');

export function number(n, digits = 0) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(n);
}

export function percent(p) {
  return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 0 }).format(p / 100);
}

export function size(bytes) {
  if (!(bytes >= 0)) return '?';
  let i = 0;
  let v = bytes;
  while (v >= 1000 && i < 4) {
    v /= 1024;
    i++;
  }
  return `${number(v, i && v < 10 ? 1 : 0)} ${units()[i]}`;
}

export const speed = (bps) => t('perSecond', size(bps));
