// A small hash router: sections register a path pattern and a render function, and
// navigation items; the admin console (issue 10) adds itself the same way.
//   route('/jobs/:id', {title, needsKey, render(main, params, {signal})})
//   navItem({label, href, when: () => bool})
// The URL fragment never reaches the server, so routes can carry share tokens.

import { clear, h } from './dom.js';
import * as session from './session.js';

const routes = [];
const navItems = [];
let leave = null; // AbortController of the section on screen
let fallback = null;

export function route(pattern, section) {
  const names = [];
  const source = pattern.replace(/:([a-zA-Z]+)/g, (_, name) => { names.push(name); return '([^/]+)'; });
  routes.push({ regex: new RegExp(`^${source}$`), names, section });
}

/** The section shown when no key is stored and a route needs one. */
export function signInSection(section) { fallback = section; }

export function navItem(item) { navItems.push(item); }

/** Draw the navigation again (an item's `when` learned something, e.g. the key's role). */
export function refreshNav() { renderNav(currentPath()); }

export function go(path) {
  if (location.hash === `#${path}`) render(); else location.hash = `#${path}`;
}

export function currentPath() {
  const hash = location.hash.replace(/^#/, '');
  return hash.startsWith('/') ? hash : '/';
}

function match(path) {
  for (const { regex, names, section } of routes) {
    const found = regex.exec(path);
    if (found) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
      return { section, params };
    }
  }
  return null;
}

function renderNav(path) {
  const nav = document.getElementById('nav');
  if (!nav) return;
  clear(nav);
  for (const item of navItems) {
    if (item.when && !item.when()) continue;
    const current = path === item.href.slice(1) ? 'page' : null;
    nav.append(h('a', { href: item.href, 'aria-current': current }, item.label));
  }
  const account = document.getElementById('account');
  clear(account);
  if (session.key()) {
    account.append(h('button', {
      type: 'button', class: 'link', onclick: () => { session.signOut(); go('/'); },
    }, 'Sign out'));
  }
}

export async function render() {
  if (leave) leave.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const path = currentPath();
  const main = document.getElementById('main');
  let found = match(path) || match('/');
  if (found.section.needsKey !== false && !session.key()) found = { section: fallback, params: {} };
  renderNav(path);
  clear(main);
  const { section, params } = found;
  document.title = `${typeof section.title === 'function' ? section.title(params) : section.title} · soundcheck`;
  try {
    await section.render(main, params, { signal });
  } catch (error) {
    if (signal.aborted) return;
    console.error(error);
    main.append(h('p', { class: 'error', role: 'alert' }, 'This page could not be shown. Reload and try again.'));
  }
  // Move focus to the new heading, so keyboard and screen-reader users land on it.
  const heading = main.querySelector('h1');
  if (heading && !signal.aborted && document.activeElement === document.body) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

export function start() {
  window.addEventListener('hashchange', render);
  render();
}
