// A shared report, opened from a link with the share token in the URL fragment:
// read-only, no key needed, and it shows that one report and nothing else.

import * as api from '../api.js';
import { h } from '../dom.js';
import { when } from '../format.js';
import { renderReport } from '../report-view.js';

export const shared = {
  title: 'Shared report',
  needsKey: false,
  async render(main, { token }, { signal }) {
    const heading = h('h1', {}, 'Shared report');
    main.append(heading);
    let report;
    try {
      report = await api.get('api/shared', { token });
    } catch (e) {
      main.append(h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (signal.aborted) return;
    heading.textContent = report.fileName || 'Shared report';
    main.append(h('p', { class: 'muted' }, `Read-only report shared with you; the link expires ${when(report.expiresAt)}.`));
    const body = h('div', { 'data-state': 'drawing' });
    main.append(body);
    await renderReport(body, report, { signal });
    body.dataset.state = 'drawn';
  },
};
