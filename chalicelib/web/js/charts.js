// The report's charts, drawn with the vendored uPlot (loaded on first use), each with
// its numbers as a table beside it (screen readers, copy-paste, print).

import { h, table } from './dom.js';
import { num } from './format.js';

const UPLOT = 'web/vendor/uplot-1.6.32';
const COLORS = {
  main: '#1f5fbf', second: '#8a4fd1', ref: '#d97706', target: 'rgba(22, 163, 74, 0.16)',
  targetLine: '#15803d', bad: '#b91c1c', clip: 'rgba(220, 38, 38, 0.45)', wave: 'rgba(31, 95, 191, 0.35)',
};
const FREQUENCY_TICKS = [20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000];
let loading = null;

/** uPlot, loading its script and stylesheet the first time (script-src 'self' allows it). */
export function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      document.head.append(h('link', { rel: 'stylesheet', href: `${UPLOT}/uPlot.min.css` }));
      const script = h('script', { src: `${UPLOT}/uPlot.iife.min.js` });
      script.addEventListener('load', () => resolve(window.uPlot));
      script.addEventListener('error', () => { loading = null; reject(new Error('chart library did not load')); });
      document.head.append(script);
    });
  }
  return loading;
}

/** A figure: heading, the plot's box, a caption and its numbers in a collapsible table. */
export function figure(id, title, caption, numbers) {
  const plot = h('div', { class: 'plot', role: 'img', 'aria-label': `${title}: ${caption}` });
  const fig = h('figure', { class: 'chart', id },
    h('h3', {}, title),
    plot,
    h('figcaption', {}, caption),
    numbers ? h('details', { class: 'numbers' }, h('summary', {}, `${title}: the numbers`), numbers) : null);
  return { fig, plot };
}

function width(el) {
  return Math.max(280, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 600));
}

/** Draw a uPlot chart into `el` and keep it as wide as its box; returns the chart. */
async function draw(el, options, data, signal) {
  const uPlot = await loadUPlot();
  if (signal?.aborted) return null;
  const height = options.height || (el.clientWidth < 500 ? 200 : 260);
  const series = options.series.map((s, i) => (i ? { points: { show: false }, ...s } : s));
  const chart = new uPlot({ width: width(el), height, ...options, series }, data, el);
  el.dataset.drawn = 'true';
  const observer = new ResizeObserver(() => chart.setSize({ width: width(el), height }));
  observer.observe(el);
  signal?.addEventListener('abort', () => { observer.disconnect(); chart.destroy(); });
  return chart;
}

const timeAxis = { label: 'time (s)', values: (u, ticks) => ticks.map((t) => `${t}`) };

function constant(xs, value) {
  return xs.map(() => (typeof value === 'number' ? value : null));
}

/** Series [{t, <field>}] onto the shared x grid `xs` (null where a series has no point). */
function onGrid(xs, series, field) {
  const byT = new Map((series || []).map((p) => [Number(p.t).toFixed(2), p[field]]));
  return xs.map((t) => { const v = byT.get(t.toFixed(2)); return typeof v === 'number' ? v : null; });
}

function grid(...lists) {
  const all = new Set();
  for (const list of lists) for (const p of list || []) all.add(Number(p.t));
  return [...all].sort((a, b) => a - b);
}

// --- waveform -----------------------------------------------------------------

export async function waveformChart(el, result, signal) {
  const wave = result.waveform;
  const channels = wave.channels || [];
  const n = Math.min(...channels.map((c) => c.min.length));
  const xs = Array.from({ length: n }, (_, i) => i * wave.secondsPerPoint);
  const min = xs.map((_, i) => Math.min(...channels.map((c) => c.min[i])));
  const max = xs.map((_, i) => Math.max(...channels.map((c) => c.max[i])));
  const regions = (result.peaks && result.peaks.clipRegions) || [];
  const rate = (result.file && result.file.sampleRate) || 48000;
  const clipPlugin = {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        ctx.save();
        ctx.fillStyle = COLORS.clip;
        for (const r of regions) {
          const x0 = u.valToPos(r.startSeconds, 'x', true);
          const x1 = u.valToPos(r.startSeconds + r.lengthSamples / rate, 'x', true);
          ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
        }
        ctx.restore();
      }],
    },
  };
  return draw(el, {
    plugins: [clipPlugin],
    legend: { show: false },
    cursor: { y: false },
    scales: { x: { time: false }, y: { range: [-1, 1] } },
    axes: [timeAxis, { label: 'amplitude' }],
    series: [{}, { label: 'max', stroke: COLORS.main, width: 1 }, { label: 'min', stroke: COLORS.main, width: 1 }],
    bands: [{ series: [1, 2], fill: COLORS.wave }],
  }, [xs, max, min], signal);
}

export function waveformTable(result) {
  const wave = result.waveform;
  const channels = wave.channels || [];
  const n = Math.min(...channels.map((c) => c.min.length));
  const step = Math.max(1, Math.ceil(n / 40));
  const rows = [];
  for (let i = 0; i < n; i += step) {
    let peak = 0;
    for (const c of channels) {
      for (let j = i; j < Math.min(n, i + step); j += 1) peak = Math.max(peak, Math.abs(c.min[j]), Math.abs(c.max[j]));
    }
    rows.push([num(i * wave.secondsPerPoint, 1), peak > 0 ? num(20 * Math.log10(peak), 1) : '-inf']);
  }
  return table('Peak level per segment', ['from (s)', 'peak (dBFS)'], rows);
}

export function clipTable(result) {
  const peaks = result.peaks || {};
  const regions = peaks.clipRegions || [];
  const total = peaks.clipRegionsTotal ?? regions.length;
  return h('div', {},
    h('p', {}, total === 0 ? 'No clipped regions.'
      : `${total} clipped region${total === 1 ? '' : 's'}${total > regions.length ? `, the first ${regions.length} listed` : ''}.`),
    regions.length ? table('Clipped regions', ['start (s)', 'length (samples)', 'channel'],
      regions.map((r) => [num(r.startSeconds, 3), String(r.lengthSamples), String(r.channel + 1)])) : null);
}

// --- loudness over time --------------------------------------------------------

export async function loudnessChart(el, result, target, reference, signal) {
  const loud = result.loudness || {};
  const momentary = loud.momentarySeries || [];
  const short = loud.shortTermSeries || [];
  const refShort = reference?.loudness?.shortTermSeries || [];
  const xs = grid(momentary, short, refShort);
  const series = [{}, { label: 'momentary (400 ms)', stroke: COLORS.second, width: 1 },
    { label: 'short-term (3 s)', stroke: COLORS.main, width: 2 },
    { label: 'integrated', stroke: COLORS.main, dash: [6, 4], width: 1 }];
  const data = [xs, onGrid(xs, momentary, 'lufs'), onGrid(xs, short, 'lufs'), constant(xs, loud.integratedLufs)];
  const bands = [];
  if (target && typeof target.low === 'number') {
    series.push({ label: 'target high', stroke: COLORS.targetLine, width: 0.5 },
      { label: 'target low', stroke: COLORS.targetLine, width: 0.5 });
    data.push(constant(xs, target.high), constant(xs, target.low));
    bands.push({ series: [4, 5], fill: COLORS.target });
  }
  if (refShort.length) {
    series.push({ label: 'reference short-term', stroke: COLORS.ref, width: 2, dash: [3, 3] });
    data.push(onGrid(xs, refShort, 'lufs'));
  }
  return draw(el, {
    scales: { x: { time: false } },
    axes: [timeAxis, { label: 'LUFS' }],
    series: series.map((s, i) => (i ? { spanGaps: true, ...s } : s)),
    bands,
  }, data, signal);
}

export function loudnessTable(result) {
  const loud = result.loudness || {};
  const momentary = new Map((loud.momentarySeries || []).map((p) => [Number(p.t).toFixed(1), p.lufs]));
  const rows = (loud.shortTermSeries || []).map((p) => [
    num(p.t, 1), num(p.lufs, 1), num(momentary.get(Number(p.t).toFixed(1)), 1)]);
  return table('Loudness per second (LUFS)', ['time (s)', 'short-term', 'momentary'], rows);
}

// --- spectrum ------------------------------------------------------------------

export async function spectrumChart(el, result, reference, signal) {
  const curve = result.spectrum?.curve || [];
  const xs = curve.map((p) => p.hz);
  const series = [{}, { label: 'this mix', stroke: COLORS.main, width: 2 }];
  const data = [xs, curve.map((p) => p.db)];
  const bands = [];
  if (curve.some((p) => typeof p.lowDb === 'number')) {
    series.push({ label: 'target high', stroke: COLORS.targetLine, width: 0.5 },
      { label: 'target low', stroke: COLORS.targetLine, width: 0.5 });
    data.push(curve.map((p) => p.highDb ?? null), curve.map((p) => p.lowDb ?? null));
    bands.push({ series: [2, 3], fill: COLORS.target });
  }
  const refCurve = reference?.spectrum?.curve;
  if (refCurve && refCurve.length === curve.length) {
    series.push({ label: 'reference', stroke: COLORS.ref, width: 2, dash: [3, 3] });
    data.push(refCurve.map((p) => p.db));
  }
  return draw(el, {
    scales: { x: { time: false, distr: 3, log: 10, range: [20, 20000] } },
    axes: [{
      label: 'frequency (Hz)',
      splits: () => FREQUENCY_TICKS,
      values: (u, ticks) => ticks.map((t) => (t == null ? '' : t >= 1000 ? `${t / 1000}k` : `${t}`)),
    }, { label: 'dB (re total)' }],
    series: series.map((s, i) => (i ? { spanGaps: true, ...s } : s)),
    bands,
  }, data, signal);
}

export function spectrumTable(result) {
  const curve = result.spectrum?.curve || [];
  const corridor = curve.some((p) => typeof p.lowDb === 'number');
  return table('Long-term spectrum, 1/6 octave (dB relative to the 20 Hz-20 kHz total)',
    corridor ? ['centre (Hz)', 'level', 'target low', 'target high'] : ['centre (Hz)', 'level'],
    curve.map((p) => [num(p.hz, 0), num(p.db, 1), ...(corridor ? [num(p.lowDb, 1), num(p.highDb, 1)] : [])]));
}

// --- stereo correlation ----------------------------------------------------------

export async function correlationChart(el, result, reference, signal) {
  const series = result.stereo?.correlationSeries || [];
  const ref = reference?.stereo?.correlationSeries || [];
  const xs = grid(series, ref);
  const lines = [{}, { label: 'correlation', stroke: COLORS.main, width: 2 }];
  const data = [xs, onGrid(xs, series, 'correlation')];
  if (ref.length) {
    lines.push({ label: 'reference', stroke: COLORS.ref, width: 2, dash: [3, 3] });
    data.push(onGrid(xs, ref, 'correlation'));
  }
  return draw(el, {
    scales: { x: { time: false }, y: { range: [-1, 1] } },
    axes: [timeAxis, { label: 'correlation' }],
    series: lines.map((s, i) => (i ? { spanGaps: true, ...s } : s)),
  }, data, signal);
}

export function correlationTable(result) {
  const series = result.stereo?.correlationSeries || [];
  return table('Stereo correlation per second (+1 mono, 0 unrelated, -1 out of phase)',
    ['time (s)', 'correlation'], series.map((p) => [num(p.t, 0), num(p.correlation, 2)]));
}

// --- the admin console's last 24 hours ---------------------------------------------

/**
 * A small chart over time: `xs` Unix seconds, `lines` [{label, values, color (a COLORS
 * name), bars?, dash?}] (null = no value), the y axis labelled `unit`. Bars for counts per bucket.
 */
export async function timeChart(el, xs, lines, unit, signal) {
  const uPlot = await loadUPlot();
  const bars = uPlot.paths?.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
  return draw(el, {
    height: 170,
    // Half a bucket of room each side, so the first and last bars show whole.
    scales: {
      x: { time: true, range: (u, min, max) => [min - 1800, max + 1800] },
      y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [{}, { label: unit, size: 56 }],
    series: [{}, ...lines.map((line) => ({
      label: line.label,
      stroke: COLORS[line.color] || COLORS.main,
      width: line.bars ? 1 : 2,
      fill: line.bars ? `${COLORS[line.color] || COLORS.main}99` : undefined,
      dash: line.dash,
      paths: line.bars ? bars : undefined,
      // Dots where a line has gaps, so an hour alone between empty ones still shows.
      points: { show: !line.bars && line.values.some((v) => v === null), size: 5 },
      spanGaps: !line.bars,
    }))],
  }, [xs, ...lines.map((line) => line.values)], signal);
}
