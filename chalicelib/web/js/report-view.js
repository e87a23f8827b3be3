// One report: score and suggestions first, then the metric table, the charts with
// their numbers, the streaming platforms; downloads and print. Used by the owner's
// report page and by a share link (read-only: no share controls).

import * as charts from './charts.js';
import { append, download, h, table } from './dom.js';
import { csv, duration, num, signed } from './format.js';

const STATUS_LABEL = { ok: 'ok', attention: 'slightly off', high: 'off target', critical: 'far off', unavailable: 'n/a' };
const POLICY = { 'up-and-down': 'turns down and up', 'down-only': 'turns down only', none: 'no normalisation' };

function metricTarget(row) {
  if (typeof row.target !== 'number') return 'n/a';
  const tol = row.tolerance || 0;
  if (row.kind === 'max') return `≤ ${num(row.target + tol, 2)}`;
  if (row.kind === 'min') return `≥ ${num(row.target - tol, 2)}`;
  return tol ? `${num(row.target, 2)} ± ${num(tol, 2)}` : num(row.target, 2);
}

function metricValue(row) {
  return row.metric === 'clippedSamples' ? num(row.value, 0) : num(row.value, 2);
}

/** Severity, and for a row outside its target the direction too ("too quiet, far off"). */
function statusCell(status, verdict) {
  const label = STATUS_LABEL[status] || status;
  return h('span', { class: `status status-${status}` }, verdict ? `${verdict}, ${label}` : label);
}

/** The integrated-loudness target band of the comparison, for the loudness chart. */
function loudnessTarget(comparison) {
  const row = (comparison?.metrics || []).find((m) => m.metric === 'integratedLufs');
  if (!row || typeof row.target !== 'number') return null;
  return { low: row.target - (row.tolerance || 0), high: row.target + (row.tolerance || 0) };
}

export function reportCsv(job) {
  const r = job.result || {};
  const rows = [['section', 'metric', 'value', 'unit', 'target', 'status']];
  for (const m of r.comparison?.metrics || []) rows.push(['comparison', m.label || m.metric, m.value, m.unit, metricTarget(m), m.status]);
  const blocks = { loudness: r.loudness, peaks: r.peaks, dynamics: r.dynamics, stereo: r.stereo };
  for (const [block, values] of Object.entries(blocks)) {
    for (const [name, value] of Object.entries(values || {})) {
      if (typeof value === 'number') rows.push([block, name, value, '', '', '']);
    }
  }
  for (const p of r.platforms || []) rows.push(['platforms', p.name, p.gainDb, 'dB gain', p.referenceLufs, p.limiterActs ? 'limiter acts' : '']);
  for (const p of r.loudness?.shortTermSeries || []) rows.push(['shortTermSeries', p.t, p.lufs, 'LUFS', '', '']);
  for (const p of r.loudness?.momentarySeries || []) rows.push(['momentarySeries', p.t, p.lufs, 'LUFS', '', '']);
  for (const p of r.spectrum?.curve || []) rows.push(['spectrumCurve', p.hz, p.db, 'dB', p.lowDb ?? '', p.highDb ?? '']);
  for (const p of r.stereo?.correlationSeries || []) rows.push(['correlationSeries', p.t, p.correlation, '', '', '']);
  return csv(rows);
}

function baseName(job) {
  return (job.fileName || 'report').replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 60) || 'report';
}

function summary(job) {
  const r = job.result;
  const c = r.comparison || {};
  const file = r.file || {};
  const score = typeof c.score === 'number' ? c.score : null;
  const grade = score === null ? 'none' : score >= 85 ? 'good' : score >= 60 ? 'fair' : 'poor';
  const suggestions = c.suggestions || [];
  return h('section', { class: 'summary', 'aria-labelledby': 'summary-h' },
    h('h2', { id: 'summary-h' }, 'Score and suggestions'),
    h('div', { class: 'score-row' },
      h('p', { class: `score score-${grade}` },
        h('span', { class: 'score-value' }, score === null ? 'n/a' : String(score)),
        h('span', { class: 'score-max' }, score === null ? '' : '/100')),
      h('div', {},
        h('p', {}, `Against ${c.targetTitle || c.target || 'targets'} (${c.mode || 'genre'} mode)`),
        c.reason ? h('p', { class: 'muted' }, c.reason) : null,
        h('p', { class: 'muted' }, [file.format, file.subtype, file.sampleRate && `${file.sampleRate} Hz`,
          file.layout || (file.channels && `${file.channels} ch`), duration(file.durationSeconds)].filter(Boolean).join(' · ')))),
    suggestions.length
      ? h('ol', { class: 'suggestions' }, suggestions.map((s) => h('li', { class: `sev-${s.severity}` },
        h('span', { class: `status status-${s.severity}` }, STATUS_LABEL[s.severity] || s.severity), ' ', s.message)))
      : h('p', {}, score === null ? 'No suggestions.' : 'Nothing to fix: every metric is within its target.'));
}

function metrics(job) {
  const rows = (job.result.comparison?.metrics || []).map((m) => [
    m.label || m.metric, `${metricValue(m)}${m.unit ? ` ${m.unit}` : ''}`, `${metricTarget(m)}${m.unit ? ` ${m.unit}` : ''}`, statusCell(m.status, m.verdict)]);
  return h('section', { 'aria-labelledby': 'metrics-h' },
    h('h2', { id: 'metrics-h' }, 'Metrics'),
    h('div', { class: 'scroll' }, table(null, ['metric', 'value', 'target', 'status'], rows, { class: 'metrics' })));
}

function platformsTable(result) {
  const rows = (result.platforms || []).map((p) => [
    p.name, p.referenceLufs === null ? '—' : num(p.referenceLufs, 0, 'LUFS'), POLICY[p.policy] || p.policy,
    signed(p.gainDb, 1, 'dB'), num(p.resultingLufs, 1, 'LUFS'), num(p.resultingTruePeakDbtp, 1, 'dBTP'),
    p.limiterActs ? 'acts' : '—', h('a', { href: p.source, rel: 'noopener noreferrer', target: '_blank' }, p.confidence)]);
  return h('section', { 'aria-labelledby': 'platforms-h' },
    h('h2', { id: 'platforms-h' }, 'Streaming platforms'),
    h('p', { class: 'muted' }, 'What each service does to this master at playback. Only Spotify documents its rules fully; the confidence links to each figure\'s source.'),
    h('div', { class: 'scroll' }, table(null,
      ['service', 'reference', 'policy', 'gain', 'plays at', 'true peak', 'limiter', 'confidence'], rows, { class: 'platforms' })));
}

function missing(title, what) {
  return h('figure', { class: 'chart missing' }, h('h3', {}, title),
    h('p', { class: 'muted' }, `${what} is not in this result (analysed by an older version). Re-run the job to get it.`));
}

function chartsSection(job, signal) {
  const r = job.result;
  const reference = r.reference || null;
  const target = loudnessTarget(r.comparison);
  const section = h('section', { 'aria-labelledby': 'charts-h' }, h('h2', { id: 'charts-h' }, 'Charts'));
  if (reference) section.append(h('p', { class: 'legend-note' }, 'Dashed orange lines: the reference track.'));
  const pending = [];
  const add = (ok, id, title, caption, numbers, drawFn, what) => {
    if (!ok) { section.append(missing(title, what)); return; }
    const { fig, plot } = charts.figure(id, title, caption, numbers());
    section.append(fig);
    pending.push(() => drawFn(plot));
  };
  add(r.waveform && r.waveform.channels, 'chart-waveform', 'Waveform',
    'Peak envelope over time; red marks clipped regions.',
    () => h('div', {}, charts.clipTable(r), charts.waveformTable(r)),
    (el) => charts.waveformChart(el, r, signal), 'The waveform');
  add(r.loudness && (r.loudness.shortTermSeries || []).length, 'chart-loudness', 'Loudness over time',
    `Momentary and short-term loudness; dashed: integrated (${num(r.loudness?.integratedLufs, 1)} LUFS)${target ? '; green band: the target' : ''}.`,
    () => charts.loudnessTable(r), (el) => charts.loudnessChart(el, r, target, reference, signal), 'The loudness series');
  add(r.spectrum && r.spectrum.curve, 'chart-spectrum', 'Spectrum',
    `Long-term average spectrum at 1/6 octave (level of each band relative to the whole)${
      (r.spectrum?.curve || []).some((p) => typeof p.lowDb === 'number') ? '; green: the genre\'s target corridor' : ''}.`,
    () => charts.spectrumTable(r), (el) => charts.spectrumChart(el, r, reference, signal), 'The spectrum curve');
  if (r.stereo) {
    const low = r.stereo.lowEndCorrelation;
    add(r.stereo.correlationSeries, 'chart-correlation', 'Stereo correlation',
      `Correlation per second (overall ${num(r.stereo.correlation, 2)}; below 150 Hz ${num(low, 2)}: the low end should stay near +1 to survive mono).`,
      () => charts.correlationTable(r), (el) => charts.correlationChart(el, r, reference, signal), 'The correlation series');
  }
  return { section, drawAll: () => Promise.all(pending.map((f) => f())) };
}

/**
 * Render a completed job's report into `container`. `actions` (owner only) is a node
 * placed after the summary: share controls.
 */
export function renderReport(container, job, { actions = null, signal } = {}) {
  const toolbar = h('div', { class: 'toolbar no-print' },
    h('button', { type: 'button', onclick: () => download(`${baseName(job)}.json`, JSON.stringify(job.result, null, 2), 'application/json') }, 'Download JSON'),
    h('button', { type: 'button', onclick: () => download(`${baseName(job)}.csv`, reportCsv(job), 'text/csv') }, 'Download CSV'),
    h('button', { type: 'button', onclick: () => window.print() }, 'Print / PDF'));
  const { section, drawAll } = chartsSection(job, signal);
  append(container, [summary(job), toolbar, actions, metrics(job), section, platformsTable(job.result)]);
  return drawAll();
}
