// Compare two of the caller's jobs: side-by-side metrics and what changed
// ("+1.8 LU, PSR -2.1 dB, 3 new clipped regions").

import * as api from '../api.js';
import { h, table } from '../dom.js';
import { num, signed } from '../format.js';
import { go } from '../router.js';
import { jobLabel } from './jobs-table.js';

const ROWS = [
  ['Integrated loudness', 'LUFS', (r) => r.loudness?.integratedLufs, 'LU'],
  ['Loudness range', 'LU', (r) => r.loudness?.rangeLu, 'LU'],
  ['Short-term max', 'LUFS', (r) => r.loudness?.shortTermMaxLufs, 'LU'],
  ['True peak', 'dBTP', (r) => r.peaks?.truePeakDbtp, 'dB'],
  ['PLR', 'dB', (r) => r.dynamics?.plrDb, 'dB'],
  ['PSR', 'dB', (r) => r.dynamics?.psrDb, 'dB'],
  ['Crest factor', 'dB', (r) => r.dynamics?.crestFactorDb, 'dB'],
  ['Clipped samples', '', (r) => r.peaks?.clippedSamples, ''],
  ['Clipped regions', '', (r) => r.peaks?.clipRegionsTotal ?? (r.peaks?.clipRegions || null)?.length, ''],
  ['Stereo correlation', '', (r) => r.stereo?.correlation, ''],
  ['Low-end correlation (<150 Hz)', '', (r) => r.stereo?.lowEndCorrelation, ''],
  ['Stereo width', '%', (r) => r.stereo?.widthPercent, '%'],
  ['Score', '', (r) => r.comparison?.score, ''],
];

/** The headline differences of B against A, as a short sentence. */
export function differences(a, b) {
  const parts = [];
  const d = (f) => (typeof f(a) === 'number' && typeof f(b) === 'number' ? f(b) - f(a) : null);
  const loud = d(ROWS[0][2]);
  if (loud !== null && Math.abs(loud) >= 0.05) parts.push(`${signed(loud, 1)} LU`);
  const psr = d(ROWS[5][2]);
  if (psr !== null && Math.abs(psr) >= 0.05) parts.push(`PSR ${signed(psr, 1)} dB`);
  const tp = d(ROWS[3][2]);
  if (tp !== null && Math.abs(tp) >= 0.05) parts.push(`true peak ${signed(tp, 1)} dB`);
  const clips = d(ROWS[8][2]);
  if (clips) parts.push(clips > 0 ? `${clips} new clipped region${clips === 1 ? '' : 's'}` : `${-clips} fewer clipped region${clips === -1 ? '' : 's'}`);
  const score = d(ROWS[12][2]);
  if (score) parts.push(`score ${signed(score, 0)}`);
  return parts.length ? parts.join(', ') : 'No measurable difference.';
}

export const compare = {
  title: 'Compare',
  async render(main, { a, b }, { signal }) {
    main.append(h('h1', {}, 'Compare two versions'));
    let jobs;
    try {
      jobs = (await api.get('api/jobs?status=completed&limit=100')).jobs;
    } catch (e) {
      main.append(h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (signal.aborted) return;
    const pick = (id, label, selected) => h('div', { class: 'field' }, h('label', { for: id }, label),
      h('select', { id }, jobs.map((j) => h('option', { value: j.jobId, selected: j.jobId === selected }, `${jobLabel(j)} (${new Date(j.createdAt).toLocaleString()})`))));
    if (jobs.length < 2) {
      main.append(h('p', {}, 'You need two completed jobs to compare.'));
      return;
    }
    const form = h('form', { class: 'card row', onsubmit: (e) => {
      e.preventDefault();
      go(`/compare/${form.querySelector('#compare-a').value}/${form.querySelector('#compare-b').value}`);
    } }, pick('compare-a', 'Version A', a || jobs[1].jobId), pick('compare-b', 'Version B', b || jobs[0].jobId),
    h('button', { type: 'submit', class: 'primary' }, 'Compare'));
    main.append(form);
    if (!a || !b) return;
    let ja;
    let jb;
    try {
      [ja, jb] = await Promise.all([api.get(`api/jobs/${encodeURIComponent(a)}`), api.get(`api/jobs/${encodeURIComponent(b)}`)]);
    } catch (e) {
      main.append(h('p', { class: 'error', role: 'alert' }, api.message(e)));
      return;
    }
    if (signal.aborted) return;
    if (!ja.result || !jb.result) {
      main.append(h('p', { class: 'error' }, 'Both jobs must be completed.'));
      return;
    }
    main.append(
      h('p', { class: 'difference', id: 'difference' }, `B against A: ${differences(ja.result, jb.result)}`),
      h('div', { class: 'scroll' }, table(null, ['metric', `A: ${jobLabel(ja)}`, `B: ${jobLabel(jb)}`, 'B − A'],
        ROWS.map(([label, unit, f, dunit]) => {
          const va = f(ja.result);
          const vb = f(jb.result);
          const digits = unit === '' && label.includes('correlation') ? 2 : unit === '' ? 0 : 1;
          return [label, num(va, digits, unit), num(vb, digits, unit),
            typeof va === 'number' && typeof vb === 'number' ? signed(vb - va, digits, dunit) : 'n/a'];
        }), { class: 'compare' })));
  },
};
