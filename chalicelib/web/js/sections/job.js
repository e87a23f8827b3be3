// One job: live status (queued -> processing % -> completed, or failed with its
// message and a retry button), then the report; the owner can share it.

import * as api from '../api.js';
import { append, clear, h, toast } from '../dom.js';
import { when } from '../format.js';
import { poller } from '../poll.js';
import { renderReport } from '../report-view.js';

function statusView(job, onRetry) {
  if (job.status === 'queued') {
    const retrying = job.attempts > 0 && job.error;
    return h('div', { class: 'status-box', role: 'status' },
      h('p', {}, h('span', { class: 'badge badge-queued' }, 'queued'),
        typeof job.queuePosition === 'number' ? ` position ${job.queuePosition + 1} in the queue` : ' waiting for a worker…'),
      retrying ? h('p', { class: 'muted' }, `Retrying after: ${api.jobErrorMessage(job.error)}`) : null);
  }
  if (job.status === 'processing') {
    return h('div', { class: 'status-box', role: 'status' },
      h('p', {}, h('span', { class: 'badge badge-processing' }, 'processing'), ` ${job.progress || 0}%`),
      h('progress', { max: 100, value: job.progress || 0, 'aria-label': 'analysis progress' }));
  }
  if (job.status === 'failed') {
    return h('div', { class: 'status-box failed', role: 'alert' },
      h('p', {}, h('span', { class: 'badge badge-failed' }, 'failed'), ' ', api.jobErrorMessage(job.error)),
      job.error?.message ? h('p', { class: 'muted' }, `Detail: ${job.error.message}`) : null,
      job.uploadsExpiredAt
        ? h('p', { class: 'muted' }, 'Its upload was deleted by retention: upload the track again to retry.')
        : h('button', { type: 'button', class: 'primary', onclick: onRetry }, 'Retry'));
  }
  if (job.status === 'cancelled') {
    return h('div', { class: 'status-box', role: 'status' }, h('p', {}, h('span', { class: 'badge' }, 'cancelled')));
  }
  if (job.status === 'expired') {
    return h('div', { class: 'status-box', role: 'status' },
      h('p', {}, h('span', { class: 'badge badge-expired' }, 'expired'),
        ` The report was deleted by retention on ${when(job.resultExpiredAt)}. Upload the track again for a new one.`));
  }
  return null;
}

function shareControls(job) {
  const out = h('div', { class: 'share-result' });
  const list = h('ul', { class: 'shares' });
  const hours = h('select', { id: 'share-hours', 'aria-label': 'link lifetime' },
    h('option', { value: '24' }, '1 day'), h('option', { value: '168', selected: true }, '7 days'),
    h('option', { value: '720' }, '30 days'));
  const base = `${location.origin}${location.pathname}`;
  const showShares = async () => {
    try {
      const data = await api.get(`api/jobs/${encodeURIComponent(job.jobId)}/shares`);
      clear(list);
      for (const s of data.shares) {
        const state = s.revokedAt ? 'revoked' : new Date(s.expiresAt) < new Date() ? 'expired' : `expires ${when(s.expiresAt)}`;
        list.append(h('li', {}, `Link made ${when(s.createdAt)}: ${state} `,
          s.revokedAt ? null : h('button', { type: 'button', class: 'link', async onclick() {
            try {
              await api.del(`api/jobs/${encodeURIComponent(job.jobId)}/shares/${encodeURIComponent(s.shareId)}`);
              toast('Link revoked.');
              showShares();
            } catch (e) { toast(api.message(e), 'error'); }
          } }, 'revoke')));
      }
    } catch (e) { toast(api.message(e), 'error'); }
  };
  const create = h('button', { type: 'button', id: 'share-create', async onclick() {
    try {
      const share = await api.post(`api/jobs/${encodeURIComponent(job.jobId)}/shares`, { expiresInHours: Number(hours.value) });
      const url = `${base}#/shared/${share.token}`;
      const field = h('input', { type: 'text', readonly: true, value: url, id: 'share-url', 'aria-label': 'share link' });
      clear(out).append(h('label', { for: 'share-url' }, 'Read-only link (shown once; anyone with it can see this report until it expires or you revoke it):'), field,
        h('button', { type: 'button', onclick: async () => {
          field.select();
          try { await navigator.clipboard.writeText(url); toast('Link copied.'); } catch { toast('Select the link and copy it.'); }
        } }, 'Copy'));
      field.focus();
      field.select();
      showShares();
    } catch (e) { toast(api.message(e), 'error'); }
  } }, 'Create share link');
  showShares();
  return h('section', { class: 'card no-print', 'aria-labelledby': 'share-h' },
    h('h2', { id: 'share-h' }, 'Share'),
    h('div', { class: 'row' }, hours, create), out, list);
}

export const job = {
  title: 'Report',
  async render(main, { id }, { signal }) {
    const heading = h('h1', {}, 'Report');
    const status = h('div', {});
    const body = h('div', {});
    main.append(h('p', { class: 'crumbs no-print' }, h('a', { href: '#/' }, '← your jobs')), heading, status, body);
    let shown = false;
    const poll = poller(signal, async () => {
      const current = await api.get(`api/jobs/${encodeURIComponent(id)}`);
      if (signal.aborted) return false;
      heading.textContent = current.fileName || `Job ${current.jobId}`;
      append(clear(status), [statusView(current, async () => {
        try {
          await api.post(`api/jobs/${encodeURIComponent(id)}/retry`, {});
          poll.refresh();
        } catch (e) { toast(api.message(e), 'error'); }
      })]);
      if (current.status === 'completed' && !shown) {
        shown = true;
        body.dataset.state = 'drawing';
        await renderReport(body, current, { actions: shareControls(current), signal });
        body.dataset.state = 'drawn';
      }
      return current.status === 'queued' || current.status === 'processing'
        ? `${current.status}:${current.progress}:${current.attempts}` : false;
    }, (e) => { clear(status).append(h('p', { class: 'error', role: 'alert' }, api.message(e))); });
    await poll.refresh();
  },
};
