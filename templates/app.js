// The web UI's entry module: it starts the page and adds the listeners no
// one module owns (scrolling, resizing, the page hidden or shown). The
// page's code is in modules by responsibility (docs/UI.md): state.js,
// api.js, toast.js, store.js, lists.js, rows.js, tabs.js, add.js,
// settings.js, library.js, ollama.js, mirror.js, history.js, stats.js, lang.js, browsers.js. Every
// word comes from the chosen language's table (i18n/); the long lists keep
// only the rows in view in the DOM (vlist.js). The modules call each
// other's functions; loading them only declares (api.js also takes the
// token out of the address bar), and init() runs once all are loaded.
import { $ } from './dom.js';
import { isPhone } from './state.js';
import { store, connect, disconnect } from './store.js';
import { vlists, makeLists, scheduleRender, renderAll, wireLists } from './lists.js';
import { measureRowBase } from './rows.js';
import { currentTab, showTab, refreshTab, wireTabs } from './tabs.js';
import { foldAdd, wireAdd } from './add.js';
import { loadSettings, showSchedule, wireSettings } from './settings.js';
import { wireLibrary } from './library.js';
import { wireOllama } from './ollama.js';
import { mirrorTimer, wireMirror } from './mirror.js';
import { wireHistory } from './history.js';
import { lastDaily, drawDaily } from './stats.js';
import { setLanguage, chooseLanguage } from './lang.js';
import { wireBrowsers } from './browsers.js';

function init() {
  measureRowBase();
  makeLists();
  $('add-retries').value = ''; // the server's default: an outage is waited out (issue 22)
  setLanguage(chooseLanguage(), false);
  foldAdd(isPhone.matches);
  document.body.classList.remove('loading');

  wireTabs();
  wireAdd();
  wireLists();
  wireSettings();
  wireLibrary();
  wireOllama();
  wireMirror();
  wireHistory();
  wireBrowsers();

  // The rows in view change as the page scrolls and when the width changes.
  window.addEventListener('scroll', () => { if (vlists[currentTab]) scheduleRender(); }, { passive: true });
  let lastWidth = window.innerWidth;
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    if (window.innerWidth !== lastWidth) {
      lastWidth = window.innerWidth;
      measureRowBase();
      for (const vl of Object.values(vlists)) vl.forget(false);
    }
    scheduleRender();
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (currentTab === 'stats' && lastDaily) drawDaily($('daily-chart'), lastDaily); }, 150);
  });

  // Nothing is followed while the page is hidden: the stream closes and
  // opens again from the newest revision when the page shows.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      connect();
      refreshTab();
    } else {
      disconnect();
      clearTimeout(mirrorTimer);
    }
  });
  // "The queue will next run in …" counts down; the server's clock beside
  // the window goes on.
  setInterval(() => { if (document.visibilityState === 'visible' && store.schedule && (store.schedule.start || store.schedule.end)) showSchedule(); }, 30_000);

  loadSettings();
  showTab(location.hash.slice(1) || 'active');
  renderAll();
  connect();
}

init();
