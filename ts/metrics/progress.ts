// A one-line progress display: redrawn in place on a terminal, printed as plain lines (at most every
// `intervalMs`) when the output is a file or a pipe.

export interface ProgressState {
  label: string;
  done: number;
  total: number;
  elapsedSeconds: number;
  /** Extra values shown after the bar, in order ("reward 0.53"). */
  values?: Record<string, number | string>;
}

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressLineOptions {
  label?: string;
  total: number;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Non-terminal output: minimum time between printed lines (default 10000 ms). */
  intervalMs?: number;
  /** Bar width in characters (default 20; 0 for none). */
  barWidth?: number;
}

/** "1h02m", "4m05s", "12.3s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

/** Short number text: 4 significant digits, no exponent for ordinary magnitudes. */
export function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** The progress line text (no newline): label, count, bar, percent, rate, ETA, values. */
export function formatProgress(state: ProgressState, barWidth = 20): string {
  const { done, total, elapsedSeconds } = state;
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const parts: string[] = [state.label, `${done}/${total}`];
  if (barWidth > 0) {
    const filled = Math.round(frac * barWidth);
    parts.push(`[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`);
  }
  parts.push(`${Math.floor(frac * 100)}%`);
  if (done > 0) {
    const per = elapsedSeconds / done;
    parts.push(per >= 1 ? `${per.toFixed(1)}s/it` : `${(1 / Math.max(per, 1e-9)).toFixed(1)}it/s`);
    parts.push(done < total ? `eta ${formatDuration(per * (total - done))}` : `took ${formatDuration(elapsedSeconds)}`);
  }
  for (const [k, v] of Object.entries(state.values ?? {})) parts.push(`${k} ${formatValue(v)}`);
  return parts.filter((p) => p !== '').join('  ');
}

export class ProgressLine {
  private readonly stream: ProgressStream;
  private readonly label: string;
  private readonly total: number;
  private readonly intervalMs: number;
  private readonly barWidth: number;
  private readonly started = performance.now();
  private lastPrinted = -Infinity;
  private drawn = false;

  constructor(options: ProgressLineOptions) {
    this.stream = options.stream ?? process.stderr;
    this.label = options.label ?? '';
    this.total = options.total;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.barWidth = options.barWidth ?? 20;
  }

  /** Shows `done` of total with the given values. */
  update(done: number, values?: Record<string, number | string>): void {
    const now = performance.now();
    const text = formatProgress({ label: this.label, done, total: this.total, elapsedSeconds: (now - this.started) / 1000, values }, this.barWidth);
    if (this.stream.isTTY) {
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r${text.length >= cols ? text.slice(0, cols - 1) : text}\x1b[K`);
      this.drawn = true;
    } else if (now - this.lastPrinted >= this.intervalMs || done >= this.total) {
      this.stream.write(`${text}\n`);
      this.lastPrinted = now;
    }
  }

  /** Ends the line on a terminal (further output starts on a fresh line). */
  finish(): void {
    if (this.stream.isTTY && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
