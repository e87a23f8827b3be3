// The admin console (#/admin, issue 10): live counts and the last 24 hours, the job
// lists with their actions, usage per owner and the audit log. Only for an admin key:
// a user key gets a clear "admins only" and the console asks the server for nothing
// else (the server refuses it anyway: 403 on every admin route).

import * as api from '../api.js';
import { auditPanel } from '../admin/audit.js';
import { jobsPanel } from '../admin/jobs.js';
import { overviewPanel } from '../admin/overview.js';
import { ownersPanel } from '../admin/owners.js';
import { clear, h } from '../dom.js';
import { whoAmI } from '../me.js';

function adminsOnly(me) {
  return h('div', { class: 'card', id: 'admins-only', role: 'alert' },
    h('h2', {}, 'Admins only'),
    h('p', {}, 'The admin console needs an admin API key',
      me ? `; you are signed in as ${me.owner} with a ${me.role} key.` : '.'),
    h('p', {}, h('a', { href: '#/' }, 'Back to your jobs')));
}

export const admin = {
  title: 'Admin console',
  async render(main, params, { signal }) {
    main.append(h('h1', {}, 'Admin console'));
    let me;
    try {
      me = await whoAmI();
    } catch (e) {
      if (!signal.aborted) main.append(e.status === 403 ? adminsOnly(null) : h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (signal.aborted) return;
    if (!me || me.role !== 'admin') {
      main.append(adminsOnly(me));
      return;
    }
    // The panels stop with the section, or at once if the key stops being an admin's.
    const alive = new AbortController();
    signal.addEventListener('abort', () => alive.abort());
    const body = h('div', { class: 'console' });
    const forbidden = () => {
      if (alive.signal.aborted) return;
      alive.abort();
      clear(body).append(adminsOnly(null));
    };
    const options = { signal: alive.signal, onForbidden: forbidden };
    // After an action: the audit log shows it, the counts catch up at once.
    let overview = null;
    const audit = auditPanel(options);
    const acted = (refreshCounts = true) => {
      audit.reload();
      if (refreshCounts) overview?.refresh();
    };
    const jobs = jobsPanel({ ...options, onAction: acted, onApply: () => overview?.refresh() });
    const owners = ownersPanel(options);
    overview = overviewPanel({
      ...options,
      onAction: acted,
      onCounts: () => { jobs.reload(); owners.reload(); },
      showList: (state) => jobs.show(state),
    });
    body.append(
      h('p', { class: 'muted' }, `Signed in as ${me.owner} (admin). Every action here is recorded in the audit log.`),
      overview.el, jobs.el, owners.el, audit.el);
    main.append(body);
    await overview.refresh();
  },
};
