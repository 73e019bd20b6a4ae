// The tabs: the one shown (kept in the address's #hash), moving between
// them with the keyboard, and loading what a tab shows when it opens.
import { $ } from './dom.js';
import { vlists } from './lists.js';
import { loadLibrary } from './library.js';
import { loadOllama } from './ollama.js';
import { mirrorTimer, loadMirror } from './mirror.js';
import { loadHistory } from './history.js';
import { loadStats } from './stats.js';

const tabs = ['active', 'queue', 'finished', 'library', 'ollama', 'history', 'stats'];
export let currentTab = 'active';

export function showTab(name, focus) {
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
  $(`tab-${name}`).scrollIntoView({ block: 'nearest', inline: 'nearest' });
  if (location.hash !== `#${name}`) history.replaceState(history.state, '', `#${name}`);
  if (vlists[name]) vlists[name].render();
  refreshTab();
}

export function refreshTab() {
  clearTimeout(mirrorTimer);
  if (currentTab === 'library') { loadLibrary(); loadMirror(); }
  else if (currentTab === 'ollama') loadOllama();
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

// showTabCues shows the cue at each side of the strip that hides tabs
// (on a phone History and Statistics were off-screen with nothing to say
// so, issue 25).
function showTabCues() {
  const strip = document.querySelector('[role="tablist"]');
  const max = strip.scrollWidth - strip.clientWidth;
  const at = Math.abs(strip.scrollLeft); // 0 at the start; negative scrollLeft in RTL
  $('tabs-more-start').hidden = !(max > 1 && at > 1);
  $('tabs-more-end').hidden = !(max > 1 && at < max - 1);
}

function scrollTabs(toEnd) {
  const strip = document.querySelector('[role="tablist"]');
  const rtl = getComputedStyle(strip).direction === 'rtl';
  const by = Math.max(80, strip.clientWidth * 0.6) * (toEnd ? 1 : -1) * (rtl ? -1 : 1);
  strip.scrollBy({ left: by, behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
}

export function wireTabs() {
  for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => showTab(t));
  const strip = document.querySelector('[role="tablist"]');
  strip.addEventListener('keydown', onTabKey);
  strip.addEventListener('scroll', showTabCues, { passive: true });
  // A tab's width changes with its count and the language; the strip's
  // with the window.
  const ro = new ResizeObserver(showTabCues);
  ro.observe(strip);
  for (const t of tabs) ro.observe($(`tab-${t}`));
  $('tabs-more-start').addEventListener('click', () => scrollTabs(false));
  $('tabs-more-end').addEventListener('click', () => scrollTabs(true));
}
