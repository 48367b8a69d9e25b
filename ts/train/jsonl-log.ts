// Run logs on resume: metrics.jsonl and samples.jsonl are cut back to the resumed checkpoint's step (the
// interrupted run may have logged steps past it), so the resumed run appends exactly where it continues.
import { existsSync, readFileSync } from 'node:fs';
import { writeBytesAtomic } from '../fs-atomic.js';

/** Keeps the complete lines whose "step" is <= maxStep (and lines without a step); atomic rewrite. */
export function truncateJsonlByStep(path: string, maxStep: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  const kept = lines.filter((line) => {
    if (line.trim() === '') return false;
    try {
      const step = (JSON.parse(line) as { step?: unknown }).step;
      return typeof step !== 'number' || step <= maxStep;
    } catch {
      return false;
    }
  });
  writeBytesAtomic(path, Buffer.from(kept.map((l) => `${l}\n`).join(''), 'utf8'));
}
