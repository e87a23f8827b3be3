// Per-owner usage (GET /api/admin/owners): role, jobs per status, audio analysed, last
// submission; paged by cursor.

import * as api from '../api.js';
import { h, table } from '../dom.js';
import { when } from '../format.js';
import { age } from './model.js';
import { pager } from './pager.js';

const STATUSES = ['queued', 'processing', 'completed', 'failed', 'cancelled'];

/** ownersPanel({signal}) -> {el, reload()} */
export function ownersPanel({ signal }) {
  const list = pager({
    name: 'Owners',
    signal,
    load: async (cursor) => {
      const query = new URLSearchParams({ limit: '20' });
      if (cursor) query.set('cursor', cursor);
      const data = await api.get(`api/admin/owners?${query}`);
      return { rows: data.owners || [], next: data.next };
    },
    show: (owners) => (owners.length
      ? h('div', { class: 'scroll' }, table(null, ['owner', 'role', ...STATUSES, 'audio analysed', 'last submitted'],
        owners.map((o) => [o.owner, o.role, ...STATUSES.map((s) => String(o.jobs?.[s] ?? 0)),
          age(o.audioSeconds), o.lastSubmittedAt ? when(o.lastSubmittedAt) : '—']), { class: 'owners stack' }))
      : h('p', { class: 'muted' }, 'No owners yet.')),
  });
  const el = h('section', { class: 'card', 'aria-labelledby': 'owners-h' }, h('h2', { id: 'owners-h' }, 'Usage per owner'), list.el);
  list.reset();
  return { el, reload: () => list.reload() };
}
