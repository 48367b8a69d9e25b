// Atomic file writes: the data goes to a temporary sibling that is fsynced and then renamed over the target,
// so a reader (or a crash) sees the old file or the complete new one, never a partial write.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { HayateError } from './errors.js';

/** Temporary sibling name; the rename makes the final file appear complete or not at all. */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** Runs `write` on a temporary file, then renames it into place; removes the temporary file on failure. */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = tempPath(path);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    if (err instanceof HayateError) throw err;
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
}

/** Writes a whole file atomically. */
export function writeBytesAtomic(path: string, bytes: Uint8Array): void {
  writeFileAtomic(path, (fd) => writeAll(fd, bytes));
}
