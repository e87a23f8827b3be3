// The admin console's pure parts (docs/web.md, /work CONSOLE contract): which columns and
// actions each job state has, query strings, durations in words, chart data from the
// overview's hourly buckets. No DOM, so tests/web/unit.mjs checks them with node.

/** The job lists (GET /api/admin/jobs?state=...), in the order the console offers them. */
export const STATES = [
  ['waiting', 'Waiting'], ['active', 'Active'], ['delayed', 'Delayed'], ['failed', 'Failed'],
  ['dead', 'Dead'], ['completed', 'Completed'], ['cancelled', 'Cancelled'], ['expired', 'Expired'],
];

/** Counts shown live, in lifecycle order (overview.counts). */
export const COUNTS = ['queued', 'processing', 'delayed', 'completed', 'failed', 'dead', 'cancelled', 'expired'];

const UNFINISHED = new Set(['waiting', 'active', 'delayed']);
const RETRYABLE = new Set(['failed', 'dead']);

/** What an admin may do to a job listed under `state`: retry, cancel, delete. */
export function actionsFor(state) {
  if (UNFINISHED.has(state)) return ['cancel'];
  if (RETRYABLE.has(state)) return ['retry', 'delete'];
  return ['delete'];
}

/** True when the list offers "retry all of this filter" (POST /api/admin/jobs/retry). */
export function canRetryAll(state) { return RETRYABLE.has(state); }

/** The columns of a state's list after the job and owner: [heading, job -> text]. */
export function columnsFor(state) {
  const common = [['file', (j) => j.fileName || '—']];
  switch (state) {
    case 'waiting':
      return [...common, ['age', (j) => age(j.ageSeconds)], ['priority', (j) => String(j.priority ?? 0)]];
    case 'active':
      return [['consumer', (j) => j.consumer || '—'], ['lease left', (j) => leaseLeft(j.leaseLeftMs)],
        ['attempt', (j) => String(j.attempt ?? '—')], ['progress', (j) => `${j.progress ?? 0}%`]];
    case 'delayed':
      return [...common, ['next run', (j) => untilText(j.nextRunAt)], ['attempt', (j) => String(j.attempt ?? '—')],
        ['last error', (j) => (j.error ? j.error.code : '—')]];
    case 'failed':
    case 'dead':
      return [['error', (j) => (j.error ? j.error.code : '—')], ['message', (j) => (j.error ? j.error.message : '')],
        ['age', (j) => age(j.ageSeconds)]];
    default:
      return [...common, ['submitted', (j) => (j.createdAt ? new Date(j.createdAt).toLocaleString() : '')]];
  }
}

/** The query string of a list page: only the filters set, then limit and cursor. */
export function jobsQuery({ state, owner, code }, cursor = null, limit = 20) {
  const params = new URLSearchParams({ state });
  if (owner && owner.trim()) params.set('owner', owner.trim());
  if (code && code.trim()) params.set('code', code.trim());
  params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  return params.toString();
}

/** The body of "retry all of this filter": the state and the filters set. */
export function retryAllBody({ state, owner, code }) {
  const body = { state };
  if (owner && owner.trim()) body.owner = owner.trim();
  if (code && code.trim()) body.code = code.trim();
  return body;
}

/** Seconds as "45 s", "3 min", "2 h 5 min", "3 d 4 h"; '' for a missing value. */
export function age(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  const hours = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${hours ? ` ${hours} h` : ''}`;
}

/** A lease's time left (ms) in words; "expired" at or below zero. */
export function leaseLeft(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms <= 0 ? 'expired' : age(ms / 1000);
}

/** A queue wait (ms) for tables: "850 ms", "12 s", "3 min". */
export function waitText(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : age(ms / 1000);
}

/** An ISO time from now: "in 40 s", "due" when past. */
export function untilText(iso, now = Date.now()) {
  const t = Date.parse(iso || '');
  if (Number.isNaN(t)) return '—';
  const left = (t - now) / 1000;
  return left <= 0 ? 'due' : `in ${age(left)}`;
}

/** The overview's hourly buckets as chart columns: x in Unix seconds, nulls kept. */
export function seriesColumns(series) {
  const buckets = series?.buckets || [];
  const val = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    xs: buckets.map((b) => Math.floor(Date.parse(b.start) / 1000)),
    completed: buckets.map((b) => val(b.completed) ?? 0),
    failed: buckets.map((b) => val(b.failed) ?? 0),
    retried: buckets.map((b) => val(b.retried) ?? 0),
    waitP50: buckets.map((b) => (val(b.waitMsP50) === null ? null : b.waitMsP50 / 1000)),
    waitP95: buckets.map((b) => (val(b.waitMsP95) === null ? null : b.waitMsP95 / 1000)),
  };
}

/**
 * An audit entry's detail as short text: "owner=bob, jobIds=3 (a1b2c3d4, …)"; a
 * nested object in parentheses: "filter=(state=failed, code=corrupt_file)".
 */
export function detailText(detail) {
  return Object.entries(detail || {}).map(([name, value]) => {
    if (Array.isArray(value)) {
      const shown = value.slice(0, 3).map((v) => String(v).slice(0, 8)).join(', ');
      return `${name}=${value.length} (${shown}${value.length > 3 ? ', …' : ''})`;
    }
    if (typeof value === 'object' && value !== null) return `${name}=(${detailText(value)})`;
    return `${name}=${value}`;
  }).join(', ');
}

/** The status columns of the usage table: `known` in order, then any other the rows have. */
export function statusColumns(owners, known) {
  const extra = new Set();
  for (const o of owners) for (const name of Object.keys(o.jobs || {})) if (!known.includes(name)) extra.add(name);
  return [...known, ...extra];
}

/** The first 8 characters of a job id (the full one goes in the row's title). */
export function shortId(id) { return String(id || '').slice(0, 8); }
