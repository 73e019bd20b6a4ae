// The page's languages, the default first. Adding a language is one new
// table beside these (a copy of en.js, translated) and one line here
// (docs/UI.md).
import fa from './fa.js';
import en from './en.js';

export const languages = [fa, en];
