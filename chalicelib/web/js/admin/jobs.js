// The console's job lists (GET /api/admin/jobs): a state and optional owner and error
// code filters, pages by cursor, and the actions each state allows: retry one or all
// of the filter (failed, dead), cancel (unfinished), delete (finished). Destructive
// actions ask first; every action is audited by the server.

import * as api from '../api.js';
import { confirmDialog, h, toast } from '../dom.js';
import { when } from '../format.js';
import { actionsFor, canRetryAll, columnsFor, jobsQuery, retryAllBody, shortId, STATES } from './model.js';
import { pager } from './pager.js';

const STATE_NAMES = Object.fromEntries(STATES);
const MAX_BATCHES = 20; // retry-all: calls per press (the server takes 100 jobs a call)

function attemptsList(job) {
  const attempts = job.attempts || [];
  if (!attempts.length) return h('p', { class: 'muted' }, 'No attempt recorded.');
  const badge = { completed: 'completed', cancelled: 'cancelled', null: 'processing' };
  return h('ol', { class: 'attempts' }, attempts.map((a) => h('li', {},
    h('span', { class: `badge badge-${badge[a.outcome] || 'failed'}` }, a.outcome || 'running'),
    ` attempt ${a.attempt}`, a.consumer ? ` on ${a.consumer}` : '',
    a.startedAt ? `, ${when(a.startedAt)}` : '', a.endedAt ? ` to ${new Date(a.endedAt).toLocaleTimeString()}` : '',
    a.error ? h('div', {}, h('code', {}, a.error.code), ` ${a.error.message || ''}`) : null)));
}

/**
 * jobsPanel({signal, onAction, onApply, onForbidden}) -> {el, reload(), show(state)}.
 * onApply() when a filter is applied (the counts refresh too, so both agree).
 */
export function jobsPanel({ signal, onAction, onApply, onForbidden }) {
  const filter = { state: 'failed', owner: '', code: '' };
  const opened = new Set(); // job ids whose attempt history is open, kept across reloads
  const stateSelect = h('select', { id: 'jobs-state', name: 'state' },
    STATES.map(([value, label]) => h('option', { value, selected: value === filter.state }, label)));
  const owner = h('input', { type: 'text', id: 'jobs-owner', name: 'owner', autocomplete: 'off', spellcheck: 'false' });
  const code = h('input', { type: 'text', id: 'jobs-code', name: 'code', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. corrupt_file' });
  const retryAll = h('button', { type: 'button', id: 'retry-all', class: 'primary' }, 'Retry all matching');
  const heading = h('h2', { id: 'jobs-h' }, 'Jobs');

  function act(failed) {
    if (failed.status === 403) onForbidden(); else toast(api.message(failed), 'error');
  }

  async function run(what, job) {
    const id = encodeURIComponent(job.jobId);
    const label = `${shortId(job.jobId)}${job.fileName ? ` (${job.fileName})` : ''} of ${job.owner}`;
    try {
      if (what === 'retry') {
        await api.post(`api/admin/jobs/${id}/retry`, {});
        toast(`Job ${label} queued again.`);
      } else {
        const cancel = what === 'cancel';
        const sure = await confirmDialog({
          title: cancel ? 'Cancel this job?' : 'Delete this job?',
          text: cancel ? `Job ${label} stops and writes nothing; its owner sees it as cancelled.`
            : `Job ${label} is deleted with its result and share links; its uploads go now, or on AWS by the bucket's lifecycle rule. This cannot be undone.`,
          confirm: cancel ? 'Cancel job' : 'Delete job',
        });
        if (!sure) return;
        const done = await api.del(`api/admin/jobs/${id}`);
        toast(`Job ${label} ${done?.status === 'deleted' ? 'deleted' : 'cancelled'}.`);
      }
    } catch (e) { act(e); return; }
    onAction();
    focusHeading();
    await list.reload();
  }

  // Every action takes its rows out of the list on screen, pressed button included:
  // keyboard focus goes to the list's heading first, not to the top of the page when
  // the button goes. (Moved after the reload, it raced the console's own refresh.)
  function focusHeading() {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }

  function rows(jobs) {
    const state = filter.state;
    if (!jobs.length) {
      const by = [filter.owner && `owner ${filter.owner}`, filter.code && `code ${filter.code}`].filter(Boolean).join(', ');
      return h('p', { class: 'muted empty' }, `No ${STATE_NAMES[state].toLowerCase()} jobs${by ? ` for ${by}` : ''}.`);
    }
    const columns = columnsFor(state);
    const history = state === 'failed' || state === 'dead';
    const headers = ['job', 'owner', ...columns.map(([name]) => name), history ? 'attempts' : null, 'actions'].filter(Boolean);
    return h('div', { class: 'scroll' }, h('table', { class: `jobs jobs-${state} stack` },
      h('caption', { class: 'visually-hidden' }, `${STATE_NAMES[state]} jobs`),
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, jobs.map((job) => {
        const details = history ? h('details', { open: opened.has(job.jobId), ontoggle: (e) => {
          if (e.target.open) opened.add(job.jobId); else opened.delete(job.jobId);
        } }, h('summary', {}, `${(job.attempts || []).length} attempt${(job.attempts || []).length === 1 ? '' : 's'}`), attemptsList(job)) : null;
        return h('tr', { dataset: { jobId: job.jobId } },
          h('th', { scope: 'row', 'data-label': 'job' }, h('code', { title: job.jobId }, shortId(job.jobId))),
          h('td', { 'data-label': 'owner' }, job.owner),
          columns.map(([name, value]) => h('td', { 'data-label': name }, value(job))),
          details ? h('td', { 'data-label': 'attempts' }, details) : null,
          h('td', { class: 'actions', 'data-label': 'actions' }, h('div', {}, actionsFor(state).map((what) => h('button', {
            type: 'button', class: what === 'retry' ? 'small' : 'small danger-outline', dataset: { action: what },
            'aria-label': `${what[0].toUpperCase()}${what.slice(1)} job ${shortId(job.jobId)}`,
            onclick: () => run(what, job),
          }, `${what[0].toUpperCase()}${what.slice(1)}`)))));
      }))));
  }

  const list = pager({
    name: 'Jobs',
    signal,
    load: async (cursor) => {
      const data = await api.get(`api/admin/jobs?${jobsQuery(filter, cursor)}`);
      return { rows: data.jobs || [], next: data.next };
    },
    show: rows,
  });

  function apply() {
    filter.state = stateSelect.value;
    filter.owner = owner.value;
    filter.code = code.value;
    retryAll.hidden = !canRetryAll(filter.state);
    heading.textContent = `Jobs: ${STATE_NAMES[filter.state].toLowerCase()}`;
    onApply?.();
    return list.reset();
  }

  retryAll.addEventListener('click', async () => {
    const body = retryAllBody(filter);
    const scope = [body.owner && `owner ${body.owner}`, body.code && `error code ${body.code}`].filter(Boolean).join(' and ');
    const sure = await confirmDialog({
      title: `Retry all ${body.state} jobs${scope ? ` of ${scope}` : ''}?`,
      text: `Every ${body.state} job matching this filter${scope ? ` (${scope})` : ''} is queued again, up to the server's batch limit.`,
      confirm: 'Retry all',
    });
    if (!sure) return;
    // The server redrives a bounded batch per call and says `more` while some match
    // still: call again (at most MAX_BATCHES times; the rest needs another press).
    let retried = 0;
    let more = true;
    try {
      for (let batch = 0; more && batch < MAX_BATCHES && !signal.aborted; batch += 1) {
        const done = await api.post('api/admin/jobs/retry', body);
        retried += done.retried;
        more = Boolean(done.more) && done.retried > 0;
      }
      toast(`Retried ${retried} job${retried === 1 ? '' : 's'}.${more ? ' More match: press again.' : ''}`);
    } catch (e) {
      if (retried) toast(`Retried ${retried} jobs, then: ${api.message(e)}`, 'error'); else act(e);
      if (!retried) return;
    }
    onAction();
    focusHeading();
    await list.reload();
  });
  stateSelect.addEventListener('change', apply);

  const form = h('form', { class: 'row filters', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'field' }, h('label', { for: 'jobs-state' }, 'State'), stateSelect),
    h('div', { class: 'field' }, h('label', { for: 'jobs-owner' }, 'Owner'), owner),
    h('div', { class: 'field' }, h('label', { for: 'jobs-code' }, 'Error code'), code),
    h('button', { type: 'submit' }, 'Apply'));
  const el = h('section', { class: 'card', 'aria-labelledby': 'jobs-h', id: 'jobs' },
    heading, form, h('div', { class: 'toolbar' }, retryAll), list.el);
  apply();
  return {
    el,
    reload: () => list.reload(),
    show(state) {
      stateSelect.value = state;
      apply();
      el.scrollIntoView({ block: 'start' });
      stateSelect.focus({ preventScroll: true });
    },
  };
}
