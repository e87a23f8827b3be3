// The console's live part (GET /api/admin/overview): counts per state, consumers and
// their leases, pause/resume, and the last 24 hours as three small charts. Polled
// every 2 s while something changes, backing off to 10 s while nothing does; stopped
// when the section is left (its AbortSignal).

import * as api from '../api.js';
import { figure, timeChart } from '../charts.js';
import { append, clear, h, table, toast } from '../dom.js';
import { poller } from '../poll.js';
import { COUNTS, leaseLeft, seriesColumns, waitText } from './model.js';

const LIST_OF_COUNT = { queued: 'waiting', processing: 'active' };

function hour(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function numbersTable(title, headers, buckets, cells) {
  return table(title, ['hour from', ...headers], buckets.map((b) => [hour(b.start), ...cells(b)]));
}

/** A chart that draws itself again when its data changes (the old one destroyed). */
function liveChart(id, title, caption, signal) {
  const numbers = h('div', {});
  const { fig, plot } = figure(id, title, caption, numbers);
  let drawn = null;
  let current = null;
  signal.addEventListener('abort', () => current?.abort());
  return {
    fig,
    async update(fingerprint, xs, lines, unit, tableNode) {
      if (fingerprint === drawn) return;
      drawn = fingerprint;
      current?.abort();
      current = new AbortController();
      clear(numbers).append(tableNode);
      clear(plot);
      delete plot.dataset.drawn;
      await timeChart(plot, xs, lines, unit, current.signal);
    },
  };
}

/**
 * overviewPanel({signal, onCounts, onAction, onForbidden, showList}) -> {el, refresh}.
 * onCounts(counts) after each poll whose numbers changed; showList(state) when an
 * admin picks a count; onAction() after pause/resume (the audit log reloads).
 */
export function overviewPanel({ signal, onCounts, onAction, onForbidden, showList }) {
  const counts = h('ul', { class: 'counts', 'aria-label': 'Jobs per state' });
  const cells = {};
  for (const name of COUNTS) {
    cells[name] = h('span', { class: 'count-value' }, '…');
    counts.append(h('li', { dataset: { state: name } },
      h('button', { type: 'button', class: 'count', onclick: () => showList(LIST_OF_COUNT[name] || name),
        'aria-label': `${name}: show the list` }, cells[name], h('span', { class: 'count-name' }, name))));
  }
  const queueState = h('p', { id: 'queue-state', role: 'status' });
  const toggle = h('button', { type: 'button', id: 'queue-toggle', disabled: true }, 'Pause queue');
  const consumers = h('div', { class: 'scroll' });
  const updated = h('p', { class: 'muted small' });
  const error = h('p', { class: 'error', role: 'alert' });
  const charts = {
    throughput: liveChart('chart-throughput', 'Completed per hour', 'Jobs completed in each of the last 24 hours.', signal),
    failures: liveChart('chart-failures', 'Failures per hour', 'Jobs failed for good (bars) and failures that were retried (line) in each of the last 24 hours.', signal),
    wait: liveChart('chart-wait', 'Queue wait', 'Median and 95th percentile of the wait from submit to start, per hour (seconds).', signal),
  };
  let paused = null;

  toggle.addEventListener('click', async () => {
    const action = paused ? 'resume' : 'pause';
    toggle.disabled = true;
    try {
      await api.post(`api/admin/queue/${action}`, {});
      toast(action === 'pause' ? 'Queue paused: no job is handed out.' : 'Queue resumed.');
      onAction(false);
    } catch (e) {
      if (e.status === 403) onForbidden(); else toast(api.message(e), 'error');
    }
    await poll.refresh();
  });

  let lastCounts = null;
  const poll = poller(signal, async () => {
    const data = await api.get('api/admin/overview');
    if (signal.aborted) return false;
    error.textContent = '';
    for (const name of COUNTS) cells[name].textContent = String(data.counts?.[name] ?? 0);
    paused = Boolean(data.paused);
    clear(queueState).append(h('span', { class: `badge ${paused ? 'badge-failed' : 'badge-completed'}` }, paused ? 'paused' : 'running'),
      paused ? ' Queue paused: no job is handed out until it is resumed.' : ' Queue running.');
    toggle.textContent = paused ? 'Resume queue' : 'Pause queue';
    toggle.classList.toggle('primary', paused);
    toggle.disabled = false;
    const list = data.consumers || [];
    clear(consumers).append(list.length
      ? table(null, ['consumer', 'jobs', 'lease left', 'last seen'], list.map((c) => [c.consumer, String(c.jobs),
        leaseLeft(c.leaseLeftMs), c.lastSeenAt ? new Date(c.lastSeenAt).toLocaleTimeString() : '—']), { class: 'consumers stack' })
      : h('p', { class: 'muted' }, 'No consumer seen lately.'));
    const oldest = data.queue?.oldestWaitingAgeMs;
    updated.textContent = `${typeof oldest === 'number' ? `Oldest waiting job: ${waitText(oldest)}. ` : ''}Updated ${new Date().toLocaleTimeString()}.`;
    const countsPrint = JSON.stringify(data.counts);
    if (countsPrint !== lastCounts) {
      lastCounts = countsPrint;
      onCounts(data.counts);
    }
    await drawSeries(data.series);
    return JSON.stringify([data.counts, data.paused, list.map((c) => [c.consumer, c.jobs])]);
  }, (e) => {
    if (e.status === 403) { onForbidden(); return; }
    error.textContent = api.message(e);
  }, { first: 2000, max: 10000, factor: 1.5 });

  async function drawSeries(series) {
    const buckets = series?.buckets || [];
    const columns = seriesColumns(series);
    const print = JSON.stringify(buckets);
    await Promise.all([
      charts.throughput.update(print, columns.xs, [{ label: 'completed', values: columns.completed, color: 'main', bars: true }], 'jobs',
        numbersTable('Completed per hour', ['completed'], buckets, (b) => [String(b.completed ?? 0)])),
      charts.failures.update(print, columns.xs, [{ label: 'failed', values: columns.failed, color: 'bad', bars: true },
        { label: 'retried', values: columns.retried, color: 'ref' }], 'jobs',
      numbersTable('Failures per hour', ['failed for good', 'retried'], buckets, (b) => [String(b.failed ?? 0), String(b.retried ?? 0)])),
      charts.wait.update(print, columns.xs, [
        { label: 'median', values: columns.waitP50, color: 'main' },
        { label: '95th percentile', values: columns.waitP95, color: 'ref', dash: [5, 4] }], 'seconds',
      numbersTable('Queue wait per hour', ['median', '95th percentile'], buckets, (b) => [waitText(b.waitMsP50), waitText(b.waitMsP95)])),
    ]);
  }

  const el = h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'now-h' },
      h('h2', { id: 'now-h' }, 'Now'),
      h('div', { class: 'row queue-row' }, queueState, toggle),
      counts,
      h('p', { class: 'muted small' }, 'Queued, processing, completed, failed, cancelled and expired (result deleted by retention) are the jobs\' statuses; delayed (waiting to be retried, also queued) and dead (out of the queue for good, also failed) are the queue\'s own counts.'),
      error,
      h('h3', {}, 'Consumers'), consumers, updated),
    h('section', { 'aria-labelledby': 'day-h' },
      h('h2', { id: 'day-h' }, 'Last 24 hours'),
      append(h('div', { class: 'charts-3' }), Object.values(charts).map((c) => c.fig))));
  return { el, refresh: () => poll.refresh() };
}
