// The API key lives in the browser's localStorage only. It reaches the server in the
// Authorization header, never in a URL: the sign-in link carries it in the fragment
// (#key=...), which browsers never send, and the page removes it from the address bar.

const STORAGE_KEY = 'soundcheck.apiKey';

export function key() {
  try { return localStorage.getItem(STORAGE_KEY) || null; } catch { return null; }
}

export function signIn(value) {
  const trimmed = String(value || '').trim();
  if (!trimmed || /\s/.test(trimmed)) return false;
  localStorage.setItem(STORAGE_KEY, trimmed);
  return true;
}

export function signOut() {
  try { localStorage.removeItem(STORAGE_KEY); } catch { /* storage disabled */ }
}

/** Sign in from a `#key=...` fragment, then strip it from the address and history. */
export function signInFromFragment() {
  const hash = location.hash || '';
  if (!hash.startsWith('#key=')) return false;
  const value = decodeURIComponent(hash.slice(5));
  history.replaceState(null, '', location.pathname + location.search + '#/');
  return signIn(value);
}
