// Who the stored key belongs to (GET /api/me: owner, role, expiry), asked once per key:
// the navigation shows the admin console only to admins, and the console checks it
// before it asks for anything else. A refusal (4xx) is kept for the key too; only a
// network error or a 5xx is asked again.

import * as api from './api.js';
import * as session from './session.js';

let known = { key: null, me: null, refused: null, pending: null };

function ask(key) {
  const asked = { key, me: null, refused: null, pending: null };
  asked.pending = api.get('api/me').then((me) => {
    asked.me = me;
    if (known === asked) document.documentElement.dataset.role = me.role; // for styles and tests
    return me;
  }, (e) => {
    if (e.status >= 400 && e.status < 500) asked.refused = e; else asked.pending = null;
    throw e;
  });
  known = asked;
  return asked.pending;
}

/** {owner, role, expiresAt} of the stored key, or null without a key; rejects with ApiError. */
export function whoAmI() {
  const key = session.key();
  if (!key) return Promise.resolve(null);
  if (known.key === key) {
    if (known.me) return Promise.resolve(known.me);
    if (known.refused) return Promise.reject(known.refused);
    if (known.pending) return known.pending;
  }
  return ask(key);
}

/**
 * True when the stored key is known to be an admin's. Not known yet: asks once and
 * calls `onKnown()` when the answer arrives (the navigation redraws itself).
 */
export function isAdmin(onKnown) {
  const key = session.key();
  if (!key) { delete document.documentElement.dataset.role; return false; }
  if (known.key === key && (known.me || known.refused || known.pending)) return known.me?.role === 'admin';
  ask(key).then(() => onKnown?.(), () => {});
  return false;
}
