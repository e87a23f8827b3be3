// Sign in with an API key (kept in this browser only). Without a key the page shows
// nothing of anyone's jobs.

import * as api from '../api.js';
import { h } from '../dom.js';
import { render } from '../router.js';
import * as session from '../session.js';

export const signin = {
  title: 'Sign in',
  needsKey: false,
  render(main) {
    const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
    const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' });
    const form = h('form', {
      class: 'card signin',
      async onsubmit(event) {
        event.preventDefault();
        error.textContent = '';
        if (!session.signIn(input.value)) { error.textContent = 'Enter your API key.'; return; }
        try {
          await api.get('api/jobs?limit=1');
          render();
        } catch (e) {
          session.signOut();
          error.textContent = api.message(e);
        }
      },
    },
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h('p', { class: 'muted' }, 'Kept in this browser only; signing out removes it. On your own machine, soundcheck dev prints a link that signs you in.'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    error);
    main.append(h('h1', {}, 'Sign in to soundcheck'), form);
  },
};
