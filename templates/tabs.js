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

export function wireTabs() {
  for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => showTab(t));
  document.querySelector('[role="tablist"]').addEventListener('keydown', onTabKey);
}
