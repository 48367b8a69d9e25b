// CLI error reporting: one clear line naming the cause, and an exit code per class of failure.
import { HayateError } from '../errors.js';

export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;
export const EXIT_INTERRUPTED = 130;

export function reportAndExit(err: unknown): never {
  if (err instanceof HayateError) {
    process.stderr.write(`hayate: error: ${err.message} [${err.code}]\n`);
    process.exit(err.code === 'ERR_CANCELLED' ? EXIT_INTERRUPTED : err.code === 'ERR_INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_FAILURE);
  }
  const e = err as { code?: string; message?: string };
  if (e?.code === 'ENOENT' || e?.code === 'EACCES' || e?.code === 'ENOSPC') {
    process.stderr.write(`hayate: error: ${e.message}\n`);
    process.exit(EXIT_FAILURE);
  }
  process.stderr.write(`hayate: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
}

/** An AbortSignal raised by Ctrl-C (SIGINT), so long native work stops cleanly. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nhayate: interrupted, stopping...\n');
    controller.abort();
  });
  return controller.signal;
}
