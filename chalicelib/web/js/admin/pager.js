// A list the server hands out in pages (a `next` cursor, or the audit's `before` id):
// Previous/Next buttons; the cursors seen are kept, so Previous goes back exactly.

import * as api from '../api.js';
import { clear, h } from '../dom.js';

/**
 * pager({name, load, show}): `load(cursor)` -> {rows, next}, `show(rows)` -> a Node.
 * Returns {el, reload(), reset()}: reload keeps the page, reset goes to the first.
 */
export function pager({ name, load, show, signal }) {
  const body = h('div', { class: 'pager-body' });
  const where = h('span', { class: 'muted pager-where' });
  const prev = h('button', { type: 'button', disabled: true, onclick: () => open(index - 1) }, 'Previous page');
  const next = h('button', { type: 'button', disabled: true, onclick: () => open(index + 1) }, 'Next page');
  const nav = h('nav', { class: 'toolbar pager-nav', 'aria-label': `${name} pages`, hidden: true }, prev, where, next);
  const el = h('div', { class: 'pager' }, body, nav);
  let cursors = [null];
  let index = 0;
  let seq = 0;

  async function open(i) {
    const mine = ++seq;
    el.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await load(cursors[i]);
    } catch (e) {
      if (mine !== seq || signal?.aborted) return;
      el.removeAttribute('aria-busy');
      clear(body).append(h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (mine !== seq || signal?.aborted) return;
    index = i;
    cursors = cursors.slice(0, i + 1);
    if (page.next) cursors.push(page.next);
    clear(body).append(show(page.rows));
    prev.disabled = index === 0;
    next.disabled = !page.next;
    nav.hidden = index === 0 && !page.next; // one page: nothing to page through
    where.textContent = `page ${index + 1}`;
    el.removeAttribute('aria-busy');
    el.dataset.loaded = String(mine);
  }

  return {
    el,
    reload: () => open(index),
    reset: () => { cursors = [null]; return open(0); },
  };
}
