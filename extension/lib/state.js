// How the extension stands with the manager, in words: the popup and the
// settings page show it the same way (an element #state with #state-text,
// #state-detail and #state-code inside).
import { bdi, number, t, tNodes } from './i18n.js';

export function showState(st) {
  const box = document.getElementById('state');
  box.dataset.state = st.state;
  const server = st.server ? new URL(st.server).host : '';
  const [text, detail] = {
    paired: ['statePaired', 'statePairedDetail'],
    pending: ['statePending', 'statePendingDetail'],
    unpaired: ['stateUnpaired', 'stateUnpairedDetail'],
    unreachable: ['stateUnreachable', 'stateUnreachableDetail'],
  }[st.state] || ['stateUnreachable', 'stateUnreachableDetail'];
  document.getElementById('state-text').textContent = t(text);
  const nodes = tNodes(detail, bdi(server), bdi('ollama-model-downloader'));
  // The manager's own words (in English) follow, isolated.
  if (st.error && st.state !== 'unreachable') nodes.push(document.createTextNode(' '), bdi(`(${st.error})`));
  document.getElementById('state-detail').replaceChildren(...nodes);
  const code = document.getElementById('state-code');
  code.hidden = st.state !== 'pending' || !st.code;
  // In the page's digits, as the manager's page shows it in its language.
  const digits = (st.code || '').replace(/\d/g, (d) => number(Number(d)));
  code.textContent = digits ? `${digits.slice(0, 3)} ${digits.slice(3)}` : '';
}
