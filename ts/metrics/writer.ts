// MetricsWriter: one JSON line per training step, appended with a single write() per line to a file opened
// in append mode, so concurrent readers (tail -f, plots) only ever see whole lines and a crash loses at
// most the line being written. Non-finite numbers become null (JSON has no NaN).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { HayateError } from '../errors.js';

export type MetricValue = number | string | boolean | null;
export type MetricsRecord = Record<string, MetricValue>;

export interface MetricsWriterOptions {
  /** Keep existing lines (resuming a run); default false: start a new file. */
  append?: boolean;
}

function ioError(path: string, err: unknown): HayateError {
  return new HayateError('ERR_IO', `cannot write metrics to ${path}: ${(err as Error).message}`, { cause: err });
}

/** One line of JSON for a record (non-finite numbers as null). */
export function metricsLine(record: MetricsRecord): string {
  return `${JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))}\n`;
}

export class MetricsWriter {
  readonly path: string;
  private fd: number | undefined;

  constructor(path: string, options: MetricsWriterOptions = {}) {
    this.path = path;
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, options.append ? 'a' : 'w');
    } catch (err) {
      throw ioError(path, err);
    }
  }

  /** Appends one record (typically { step, reward, ... }). */
  write(record: MetricsRecord): void {
    if (this.fd === undefined) throw new HayateError('ERR_DISPOSED', `metrics writer for ${this.path} is closed`);
    const bytes = Buffer.from(metricsLine(record));
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off);
    } catch (err) {
      throw ioError(this.path, err);
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Reads a metrics JSONL file. A last line without its newline (a write cut short) is ignored; a malformed
 * line elsewhere is an error naming its line.
 */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `metrics file not found: ${path}`);
  const text = readFileSync(path, 'utf8');
  // The element after the last newline is '' for a whole file, or a partial line: dropped either way.
  const complete = text.split('\n').slice(0, -1);
  const out: MetricsRecord[] = [];
  complete.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      throw new HayateError('ERR_INVALID_ARGUMENT', `${path}:${i + 1}: not valid JSON`);
    }
  });
  return out;
}
