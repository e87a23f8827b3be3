// Per-owner usage (GET /api/admin/owners): role, jobs per status, audio analysed, last
// submission; paged by cursor.

import * as api from '../api.js';
import { h, table } from '../dom.js';
import { when } from '../format.js';
import { age, statusColumns } from './model.js';
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
    show: (owners) => {
      if (!owners.length) return h('p', { class: 'muted' }, 'No owners yet.');
      const statuses = statusColumns(owners, STATUSES); // a status added later (expired) shows too
      return h('div', { class: 'scroll' }, table(null, ['owner', 'role', ...statuses, 'audio analysed', 'last submitted'],
        owners.map((o) => [o.owner, o.role || '—', ...statuses.map((s) => String(o.jobs?.[s] ?? 0)),
          age(o.audioSeconds), o.lastSubmittedAt ? when(o.lastSubmittedAt) : '—']), { class: 'owners stack' }));
    },
  });
  const el = h('section', { class: 'card', 'aria-labelledby': 'owners-h' }, h('h2', { id: 'owners-h' }, 'Usage per owner'), list.el);
  list.reset();
  return { el, reload: () => list.reload() };
}
