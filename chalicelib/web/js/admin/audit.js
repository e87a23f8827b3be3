// The audit log (GET /api/admin/audit): who did what, when, on what; newest first,
// paged with `before=<the last id shown>`.

import * as api from '../api.js';
import { h, table } from '../dom.js';
import { when } from '../format.js';
import { detailText } from './model.js';
import { pager } from './pager.js';

const PAGE = 20;

/** auditPanel({signal}) -> {el, reload()}: reload shows the newest page again. */
export function auditPanel({ signal }) {
  const list = pager({
    name: 'Audit log',
    signal,
    load: async (before) => {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (before) query.set('before', before);
      const entries = (await api.get(`api/admin/audit?${query}`)).entries || [];
      return { rows: entries, next: entries.length === PAGE ? String(entries[entries.length - 1].id) : null };
    },
    show: (entries) => (entries.length
      ? h('div', { class: 'scroll' }, table(null, ['when', 'who', 'action', 'target', 'detail'],
        entries.map((e) => [when(e.at), e.actor, h('code', {}, e.action), e.target || '—', detailText(e.detail)]), { class: 'audit stack' }))
      : h('p', { class: 'muted' }, 'No admin action recorded yet.')),
  });
  const el = h('section', { class: 'card', 'aria-labelledby': 'audit-h' }, h('h2', { id: 'audit-h' }, 'Audit log'), list.el);
  list.reset();
  return { el, reload: () => list.reset() };
}
