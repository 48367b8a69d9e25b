// Reward curves as standalone SVG files (no dependencies): raw value per step plus a trailing moving
// average, with axes, ticks, grid, labels and a legend. Any browser or image viewer opens them.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HayateError } from '../errors.js';
import { movingAverage } from './stats.js';
import { readMetrics } from './writer.js';

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  points: Point[];
  color: string;
  /** Stroke width (default 2). */
  width?: number;
  opacity?: number;
  /** Draw a dot at each point (default false). */
  dots?: boolean;
}

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixels (default 800 x 450). */
  width?: number;
  height?: number;
  /** Force the y range (e.g. [0, 1.1] for a 0..1 reward); default: fitted to the data. */
  yRange?: [number, number];
  /** x values are whole numbers (steps): ticks at integers only. */
  integerX?: boolean;
}

export interface RewardCurveOptions extends ChartOptions {
  /** Moving-average window in steps (default: about a tenth of the steps, 1..50). */
  window?: number;
  /** Name of the raw series in the legend (default 'reward'). */
  label?: string;
}

/** Step of "nice" ticks (1, 2 or 5 x 10^n) for about `count` intervals over [min, max]. */
function niceStep(min: number, max: number, count: number): number {
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function widen(min: number, max: number): [number, number] {
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    return [min - pad, max + pad];
  }
  return [min, max];
}

function ticksBetween(lo: number, hi: number, step: number): number[] {
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** Evenly spaced "nice" tick values (steps of 1, 2 or 5 x 10^n) within [min, max], about `count` intervals. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  [min, max] = widen(min, max);
  return ticksBetween(min, max, niceStep(min, max, count));
}

/** [min, max] widened outward to whole tick steps, with its ticks (an axis that starts and ends on a tick). */
export function niceDomain(min: number, max: number, count = 5, options: { integer?: boolean } = {}): { min: number; max: number; ticks: number[] } {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { min: 0, max: 1, ticks: [0, 0.5, 1] };
  [min, max] = widen(min, max);
  const step = options.integer ? Math.max(1, niceStep(min, max, count)) : niceStep(min, max, count);
  const lo = Number((Math.floor(min / step + 1e-9) * step).toPrecision(12));
  const hi = Number((Math.ceil(max / step - 1e-9) * step).toPrecision(12));
  return { min: lo, max: hi, ticks: ticksBetween(lo, hi, step) };
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** A line chart of one or more series as an SVG document. */
export function lineChartSvg(series: readonly Series[], options: ChartOptions = {}): string {
  const W = options.width ?? 800;
  const H = options.height ?? 450;
  const m = { left: 72, right: 24, top: options.title ? 64 : 36, bottom: 60 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));

  const integer = { integer: options.integerX ?? false };
  const xd = all.length ? niceDomain(Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x)), 8, integer) : niceDomain(0, 1, 8, integer);
  const yd = options.yRange
    ? { min: options.yRange[0], max: options.yRange[1], ticks: niceTicks(options.yRange[0], options.yRange[1], 6) }
    : all.length
      ? niceDomain(Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y)), 6)
      : niceDomain(0, 1, 6);
  const [x0, x1] = xd.min < xd.max ? [xd.min, xd.max] : [xd.min - 1, xd.max + 1];
  const [y0, y1] = yd.min < yd.max ? [yd.min, yd.max] : [yd.min - 1, yd.max + 1];
  const xt = xd.ticks;
  const yt = yd.ticks;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (options.title) out.push(`<text x="${W / 2}" y="26" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">${esc(options.title)}</text>`);
  // Grid and ticks.
  out.push('<g stroke="#e4e4e4" stroke-width="1">');
  for (const t of yt) if (t >= y0 && t <= y1) out.push(`<line x1="${m.left}" y1="${fmt(sy(t))}" x2="${m.left + pw}" y2="${fmt(sy(t))}"/>`);
  for (const t of xt) if (t >= x0 && t <= x1) out.push(`<line x1="${fmt(sx(t))}" y1="${m.top}" x2="${fmt(sx(t))}" y2="${m.top + ph}"/>`);
  out.push('</g>');
  out.push('<g fill="#444">');
  for (const t of yt) if (t >= y0 && t <= y1) out.push(`<text x="${m.left - 8}" y="${fmt(sy(t) + 4)}" text-anchor="end">${tickLabel(t)}</text>`);
  for (const t of xt) if (t >= x0 && t <= x1) out.push(`<text x="${fmt(sx(t))}" y="${m.top + ph + 18}" text-anchor="middle">${tickLabel(t)}</text>`);
  out.push('</g>');
  out.push('<g stroke="#444" stroke-width="1">');
  for (const t of yt) if (t >= y0 && t <= y1) out.push(`<line x1="${m.left - 4}" y1="${fmt(sy(t))}" x2="${m.left}" y2="${fmt(sy(t))}"/>`);
  for (const t of xt) if (t >= x0 && t <= x1) out.push(`<line x1="${fmt(sx(t))}" y1="${m.top + ph}" x2="${fmt(sx(t))}" y2="${m.top + ph + 4}"/>`);
  out.push('</g>');
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444" stroke-width="1"/>`);
  if (options.xLabel) out.push(`<text x="${m.left + pw / 2}" y="${H - 16}" text-anchor="middle" font-size="13" fill="#222">${esc(options.xLabel)}</text>`);
  if (options.yLabel) out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">${esc(options.yLabel)}</text>`);
  // Data, clipped to the plot area.
  out.push(`<defs><clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  out.push('<g clip-path="url(#plot)">');
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length === 0) continue;
    const opacity = s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : '';
    if (pts.length > 1) {
      const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(sx(p.x))},${fmt(sy(p.y))}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}" stroke-linejoin="round"${opacity}/>`);
    }
    if (s.dots || pts.length === 1) for (const p of pts) out.push(`<circle cx="${fmt(sx(p.x))}" cy="${fmt(sy(p.y))}" r="2.5" fill="${s.color}"/>`);
  }
  out.push('</g>');
  // Legend: one row above the plot, right-aligned.
  const widths = series.map((s) => 34 + s.name.length * 6.6 + 18);
  let lx = m.left + pw - widths.reduce((a, b) => a + b, 0);
  const ly = m.top - 12;
  series.forEach((s, i) => {
    out.push(`<line x1="${fmt(lx)}" y1="${ly - 4}" x2="${fmt(lx + 24)}" y2="${ly - 4}" stroke="${s.color}" stroke-width="${Math.max(2, s.width ?? 2)}"/>`);
    out.push(`<text x="${fmt(lx + 30)}" y="${ly}" fill="#222">${esc(s.name)}</text>`);
    lx += widths[i];
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The reward curve: raw value per step (light) and its moving average (bold). */
export function rewardCurveSvg(points: readonly Point[], options: RewardCurveOptions = {}): string {
  const pts = [...points].filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
  const window = options.window ?? Math.max(1, Math.min(50, Math.round(pts.length / 10)));
  const avg = movingAverage(pts.map((p) => p.y), window);
  const label = options.label ?? 'reward';
  return lineChartSvg(
    [
      { name: label, points: pts, color: '#7fb3e6', width: 1.5, dots: pts.length <= 60 },
      { name: `${label}, moving average (${window} step${window === 1 ? '' : 's'})`, points: pts.map((p, i) => ({ x: p.x, y: avg[i] })), color: '#c0392b', width: 2.5 },
    ],
    { title: options.title ?? 'Reward per step', integerX: true, xLabel: options.xLabel ?? 'step', yLabel: options.yLabel ?? label, ...options },
  );
}

/** Writes an SVG text to `path` atomically. */
export function writeSvg(path: string, svg: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, svg);
    renameSync(tmp, path);
  } catch (err) {
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Plots `metric` (default 'reward') against 'step' from a metrics JSONL file into an SVG file. */
export function plotMetricsFile(metricsPath: string, svgPath: string, options: RewardCurveOptions & { metric?: string } = {}): void {
  const metric = options.metric ?? 'reward';
  const points = readMetrics(metricsPath)
    .filter((r) => typeof r.step === 'number' && typeof r[metric] === 'number')
    .map((r) => ({ x: r.step as number, y: r[metric] as number }));
  if (points.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', `${metricsPath} has no lines with numeric "step" and "${metric}"`);
  writeSvg(svgPath, rewardCurveSvg(points, { label: metric, ...options }));
}
