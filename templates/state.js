// What the page's modules share that changes while the page is open: the
// table of the language in force (I, from i18n.js), which a switch of
// language replaces. Every module imports I and reads it through the
// module's live binding, so all of them see the one table; only setI
// (lang.js) replaces it.
import { fallbackLanguage, findLanguage, makeI18n } from './i18n.js';

export let I = makeI18n(findLanguage(fallbackLanguage));

export function setI(table) {
  I = table;
}

// A phone's width: the add form folds away, a row is taller.
export const isPhone = window.matchMedia('(max-width: 640px)');
