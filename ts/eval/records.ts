// Writing evaluation records and summaries: JSONL written to a temporary name then renamed, so a reader
// never sees half a file and an interrupted run leaves the previous file intact.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HayateError } from '../errors.js';

/** Writes one JSON line per row to `path`, atomically (temporary file + rename). */
export function writeJsonlAtomic(path: string, rows: readonly unknown[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
