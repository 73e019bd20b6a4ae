// How the extension stands with the manager, in words: the popup and the
// settings page show it the same way (an element #state with #state-text,
// #state-detail and #state-code inside).
import { number, t } from './i18n.js';

export function showState(st) {
  const box = document.getElementById('state');
  box.dataset.state = st.state;
  const server = st.server ? new URL(st.server).host : '';
  const [text, detail] = {
    paired: [t('statePaired'), t('statePairedDetail', server)],
    pending: [t('statePending'), t('statePendingDetail', server)],
    unpaired: [t('stateUnpaired'), t('stateUnpairedDetail', server)],
    unreachable: [t('stateUnreachable'), t('stateUnreachableDetail', server)],
  }[st.state] || [st.state, ''];
  document.getElementById('state-text').textContent = text;
  document.getElementById('state-detail').textContent = st.error && st.state !== 'unreachable' ? `${detail} (${st.error})` : detail;
  const code = document.getElementById('state-code');
  code.hidden = st.state !== 'pending' || !st.code;
  // In the page's digits, as the manager's page shows it in its language.
  const digits = (st.code || '').replace(/\d/g, (d) => number(Number(d)));
  code.textContent = digits ? `${digits.slice(0, 3)} ${digits.slice(3)}` : '';
}
