// The page's language: asked in ?lang=, else the one remembered, else the
// default. Every word of index.html (data-t*) comes from its table, and
// the switch in the header redraws everything that shows words.
import { $, h, icon } from './dom.js';
import { languages, fallbackLanguage, findLanguage, makeI18n, parseDigits } from './i18n.js';
import { I, setI } from './state.js';
import { startURL } from './api.js';
import { vlists, renderAll } from './lists.js';
import { refreshTab } from './tabs.js';
import { foldAdd, redrawAdd } from './add.js';
import { globalLimit, showLimit, showSchedule } from './settings.js';
import { mirror, showCacheChoices, showMirror } from './mirror.js';
import { redrawBrowsers } from './browsers.js';

function storedLanguage() {
  try { return localStorage.getItem('omd.lang') || ''; } catch { return ''; }
}

function rememberLanguage(code) {
  try { localStorage.setItem('omd.lang', code); } catch { /* private mode: not remembered */ }
}

function translateStatic() {
  for (const el of document.querySelectorAll('[data-t]')) el.replaceChildren(...I.tn(el.dataset.t));
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', I.t(el.dataset.tLabel));
  for (const el of document.querySelectorAll('[data-t-title]')) el.title = I.t(el.dataset.tTitle);
  for (const el of document.querySelectorAll('[data-t-placeholder]')) el.placeholder = I.t(el.dataset.tPlaceholder);
  $('footer-font').replaceChildren(...I.tn('footer.font', { ofl: h('a', { href: '/fonts/OFL.txt', text: 'OFL' }) }));
}

// The switch names the other language in that language: the one word of
// another language the page shows. More than two languages: a list.
function renderLanguageSwitch() {
  const box = $('lang-box');
  const others = languages.filter((l) => l.code !== I.lang.code);
  if (others.length === 1) {
    const o = others[0];
    box.replaceChildren(h('button', {
      type: 'button', class: 'pill-btn lang-switch', id: 'lang-switch', lang: o.code, dir: o.dir, 'data-lang': o.code,
      title: o.name, onclick: () => setLanguage(o.code, true),
    }, icon('globe'), h('span', { text: o.name })));
    return;
  }
  const sel = h('select', { id: 'lang-switch', class: 'lang-select', 'aria-label': I.t('lang.label'), onchange: (e) => setLanguage(e.target.value, true) },
    ...languages.map((l) => h('option', { value: l.code, lang: l.code, text: l.name })));
  sel.value = I.lang.code;
  box.replaceChildren(h('label', { class: 'limit' }, icon('globe'), sel));
}

export function setLanguage(code, remember) {
  const lang = findLanguage(code) || findLanguage(fallbackLanguage);
  setI(makeI18n(lang));
  if (remember) rememberLanguage(lang.code);
  const url = new URL(location.href);
  if (url.searchParams.has('lang') && url.searchParams.get('lang') !== lang.code) {
    url.searchParams.set('lang', lang.code);
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  document.documentElement.lang = lang.code;
  document.documentElement.dir = lang.dir;
  translateStatic();
  renderLanguageSwitch();
  // Numbers typed into fields follow the digits of the language.
  for (const id of ['add-retries', 'concurrency']) {
    const v = parseDigits($(id).value);
    if (Number.isFinite(v)) $(id).value = I.num(v);
  }
  showLimit(globalLimit);
  showCacheChoices();
  foldAdd($('add-card').classList.contains('folded'));
  showSchedule();
  showMirror(mirror);
  redrawBrowsers();
  for (const vl of Object.values(vlists)) vl.forget(true);
  renderAll();
  redrawAdd();
  refreshTab();
}

export function chooseLanguage() {
  const asked = startURL.searchParams.get('lang');
  if (asked && findLanguage(asked)) {
    rememberLanguage(asked);
    return asked;
  }
  const stored = storedLanguage();
  return findLanguage(stored) ? stored : fallbackLanguage;
}
