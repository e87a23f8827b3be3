// The caller's jobs as a table (history, pickers).

import { h, table } from '../dom.js';
import { when } from '../format.js';

export const STATUS_TEXT = {
  queued: 'queued', processing: 'processing', completed: 'completed', failed: 'failed', cancelled: 'cancelled',
  expired: 'expired',
};

export function jobLabel(job) {
  return job.fileName || `job ${job.jobId.slice(0, 8)}`;
}

export function historyTable(jobs) {
  if (!jobs.length) return h('p', { class: 'muted' }, 'No jobs yet: upload a track above.');
  return h('div', { class: 'scroll' }, table(null, ['file', 'status', 'score', 'submitted'], jobs.map((job) => [
    h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, jobLabel(job)),
    h('span', { class: `badge badge-${job.status}` },
      job.status === 'processing' ? `processing ${job.progress || 0}%` : STATUS_TEXT[job.status] || job.status),
    typeof job.score === 'number' ? String(job.score) : '—',
    when(job.createdAt),
  ]), { class: 'history' }));
}
