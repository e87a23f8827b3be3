// Unit checks of the web app's pure modules, run by tests/test_web_unit.py with node.
import assert from 'node:assert/strict';
import { csv, num, signed } from '../../chalicelib/web/js/format.js';
import { differences } from '../../chalicelib/web/js/sections/compare.js';
import { describe, operations, tree } from '../../chalicelib/web/js/schema.js';
import * as admin from '../../chalicelib/web/js/admin/model.js';
import { poller } from '../../chalicelib/web/js/poll.js';

// CSV: quoting, and formula injection neutralised for spreadsheets.
assert.equal(csv([['a', 'b,c', 'say "hi"']]), 'a,"b,c","say ""hi"""\r\n');
assert.equal(csv([['=HYPERLINK("http://x")', '+1+1', '@SUM(A1)', '-2.5', '-x']]),
  '"\'=HYPERLINK(""http://x"")",\'+1+1,\'@SUM(A1),-2.5,\'-x\r\n');
assert.equal(csv([[null, undefined, 0]]), ',,0\r\n');

// Numbers: n/a for missing, no negative zero, signs.
assert.equal(num(null), 'n/a');
assert.equal(num(-0.04, 1), '0.0');
assert.equal(num(-14.26, 1, 'LUFS'), '-14.3 LUFS');
assert.equal(signed(1.84, 1, 'LU'), '+1.8 LU');
assert.equal(signed(-2.1, 1), '-2.1');

// Compare: the headline sentence of B against A.
const a = { loudness: { integratedLufs: -10.0 }, dynamics: { psrDb: 9.0 }, peaks: { truePeakDbtp: -1.0, clipRegionsTotal: 1 }, comparison: { score: 80 } };
const b = { loudness: { integratedLufs: -8.2 }, dynamics: { psrDb: 6.9 }, peaks: { truePeakDbtp: -1.0, clipRegionsTotal: 4 }, comparison: { score: 80 } };
assert.equal(differences(a, b), '+1.8 LU, PSR -2.1 dB, 3 new clipped regions');
assert.equal(differences(a, a), 'No measurable difference.');
assert.equal(differences(b, a), '-1.8 LU, PSR +2.1 dB, 3 fewer clipped regions');

// Schemas in words (the API page).
assert.equal(describe({ type: 'integer', minimum: 1, maximum: 200, default: 50 }), 'integer, 1 to 200, default 50');
assert.equal(describe({ type: ['string', 'null'], format: 'date-time' }), 'string or null, date-time');
assert.equal(describe({ enum: ['queued', 'failed'] }), 'one of: queued | failed');
assert.equal(describe({ const: 'PUT' }), 'exactly "PUT"');
assert.equal(describe({ type: 'string', minLength: 1, maxLength: 255 }), 'string, 1 to 255 characters');
assert.equal(describe({ type: 'array', items: { $ref: '#/components/schemas/Job' } }), 'array of Job');
assert.equal(describe({}), 'any');
const schemas = {
  Job: { type: 'object', required: ['jobId'], properties: { jobId: { type: 'string' }, next: { $ref: '#/components/schemas/Job' } } },
};
const jobs = tree({ type: 'object', properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } } } }, schemas);
assert.equal(jobs.children[0].name, 'jobs');
const item = jobs.children[0].children[0];
assert.equal(item.name, 'each item');
assert.deepEqual(item.children.map((c) => [c.name, c.required, c.text]), [['jobId', true, 'string'], ['next', false, 'Job']]);
assert.equal(item.children[1].children.length, 0, 'a $ref is not expanded twice down one branch');
const doc = { paths: { '/b': { get: { tags: ['x'] }, delete: { tags: ['x'] } }, '/a': { post: { tags: ['y'] } } } };
assert.deepEqual(operations(doc).map((o) => `${o.method} ${o.path}`), ['GET /b', 'DELETE /b', 'POST /a']);

// The admin console's pure parts.
assert.deepEqual(admin.actionsFor('waiting'), ['cancel']);
assert.deepEqual(admin.actionsFor('dead'), ['retry', 'delete']);
assert.deepEqual(admin.actionsFor('completed'), ['delete']);
assert.equal(admin.canRetryAll('failed') && !admin.canRetryAll('active'), true);
assert.equal(admin.jobsQuery({ state: 'failed', owner: ' bob ', code: '' }, 'c1', 20), 'state=failed&owner=bob&limit=20&cursor=c1');
assert.equal(admin.jobsQuery({ state: 'waiting', owner: 'a&b=c' }), 'state=waiting&owner=a%26b%3Dc&limit=20');
assert.deepEqual(admin.retryAllBody({ state: 'dead', owner: '', code: 'corrupt_file ' }), { state: 'dead', code: 'corrupt_file' });
assert.equal(admin.age(42), '42 s');
assert.equal(admin.age(185), '3 min');
assert.equal(admin.age(7500), '2 h 5 min');
assert.equal(admin.age(93600), '1 d 2 h');
assert.equal(admin.age(null), '—');
assert.equal(admin.leaseLeft(-5), 'expired');
assert.equal(admin.leaseLeft(12400), '12 s');
assert.equal(admin.waitText(850), '850 ms');
assert.equal(admin.untilText('2026-01-01T00:01:00Z', Date.parse('2026-01-01T00:00:00Z')), 'in 1 min');
assert.equal(admin.untilText('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:01:00Z')), 'due');
const columns = admin.seriesColumns({ buckets: [
  { start: '2026-01-01T00:00:00Z', completed: 3, failed: 1, retried: 2, waitMsP50: 1500, waitMsP95: null },
  { start: '2026-01-01T01:00:00Z', completed: 0, failed: 0, waitMsP50: null, waitMsP95: null }] });
assert.deepEqual(columns.xs, [1767225600, 1767229200]);
assert.deepEqual(columns.waitP50, [1.5, null]);
assert.deepEqual(columns.completed, [3, 0]);
assert.deepEqual(columns.retried, [2, 0]);
assert.equal(admin.detailText({ owner: 'bob', jobIds: ['aaaaaaaa-1', 'bbbbbbbb-2', 'cccccccc-3', 'd'] }), 'owner=bob, jobIds=4 (aaaaaaaa, bbbbbbbb, cccccccc, …)');
assert.equal(admin.detailText({ filter: { state: 'failed', code: 'corrupt_file' }, n: 0 }), 'filter=(state=failed, code=corrupt_file), n=0');
assert.deepEqual(admin.statusColumns([{ jobs: { queued: 1, expired: 2 } }, { jobs: {} }], ['queued', 'failed']), ['queued', 'failed', 'expired']);
assert.deepEqual(admin.columnsFor('active').map(([name]) => name), ['consumer', 'lease left', 'attempt', 'progress']);

// Polling: a refresh during a step runs one more step after it, never a second chain.
{
  const stop = new AbortController();
  let calls = 0;
  let inFlight = 0;
  let most = 0;
  let release = null;
  const poll = poller(stop.signal, async () => {
    calls += 1;
    inFlight += 1;
    most = Math.max(most, inFlight);
    if (calls === 1) await new Promise((resolve) => { release = resolve; });
    inFlight -= 1;
    return `step ${calls}`;
  }, null, { first: 5, max: 5 });
  const first = poll.refresh();
  poll.refresh();
  poll.refresh();
  release();
  await first;
  await new Promise((resolve) => setTimeout(resolve, 60));
  stop.abort();
  const after = calls;
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(most, 1, 'one step at a time');
  assert.ok(calls >= 3 && calls <= 16, `one chain of 5 ms steps for 60 ms, not several: ${calls}`);
  assert.equal(calls, after, 'no step after the abort');
}
console.log('ok');
