// Checkpoint directories, written atomically: everything goes into a hidden temporary directory next to
// the target, each file is written and fsynced, and one rename makes `checkpoint-<step>` appear complete.
// A failure (disk full, permissions) removes the temporary directory and leaves every existing checkpoint
// as it was; the error names the cause. Layout of a GRPO/SFT checkpoint:
//   checkpoint-<step>/adapter_model.safetensors, adapter_config.json   PEFT adapter (loads in PEFT/vLLM)
//                     optimizer.safetensors                             AdamW moments + update count
//                     rollout_adapter.safetensors                       (one-step off-policy runs) the adapter
//                                                                      the next, pending batch is sampled with
//                     trainer_state.json                                step, data position, seeds, options
import { existsSync, fsyncSync, closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { peftTensorName } from '../adapter.js';
import { HayateError } from '../errors.js';
import type { LoraInfo, LoraTensors } from '../model.js';
import { writeBytesAtomic } from '../fs-atomic.js';
import { floatData, readSafetensors, writeSafetensors, type WriteTensor } from '../safetensors.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const ROLLOUT_ADAPTER_FILE = 'rollout_adapter.safetensors';

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** Checkpoint directories under `outputDir` that hold a trainer state, sorted by step. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of readdirSync(outputDir)) {
    const m = CHECKPOINT_RE.exec(name);
    if (!m) continue;
    const dir = join(outputDir, name);
    if (statSync(dir).isDirectory() && existsSync(join(dir, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest checkpoint directory under `outputDir`, or undefined. */
export function latestCheckpoint(outputDir: string): string | undefined {
  const all = listCheckpoints(outputDir);
  return all.length > 0 ? all[all.length - 1].dir : undefined;
}

function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not every platform can fsync a directory; the rename is still atomic
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e?.message ?? String(err);
  if (e?.code === 'ENOSPC' || /ENOSPC/.test(msg)) return `the disk is full (${msg})`;
  return msg;
}

/**
 * Writes checkpoint `checkpoint-<step>` under outputDir: `write(tmpDir)` fills a temporary directory, which
 * is then renamed into place (replacing an older directory of the same name only after the new one is
 * complete). Returns the final directory. On failure nothing but the temporary directory is touched.
 */
export async function writeCheckpointDir(outputDir: string, step: number, write: (tmpDir: string) => Promise<void> | void): Promise<string> {
  const final = join(outputDir, checkpointName(step));
  const tmp = join(outputDir, `.${checkpointName(step)}.tmp-${process.pid}`);
  try {
    mkdirSync(outputDir, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    await write(tmp);
    fsyncDir(tmp);
    if (existsSync(final)) {
      const old = join(outputDir, `.${checkpointName(step)}.old-${process.pid}`);
      rmSync(old, { recursive: true, force: true });
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
    fsyncDir(outputDir);
    return final;
  } catch (err) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // best effort
    }
    throw new HayateError('ERR_IO', `cannot write checkpoint ${final}: ${describe(err)}; earlier checkpoints are untouched`, { cause: err });
  }
}

/** Keeps the newest `limit` checkpoints (never removing `keep`). */
export function pruneCheckpoints(outputDir: string, limit: number, keep?: string): void {
  const all = listCheckpoints(outputDir);
  for (const c of all.slice(0, Math.max(0, all.length - limit))) {
    if (c.dir === keep) continue;
    rmSync(c.dir, { recursive: true, force: true });
  }
}

export function writeJsonFile(path: string, value: unknown): void {
  writeBytesAtomic(path, Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8'));
}

export function readJsonFile<T>(path: string, what: string): T {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** LoRA tensors (A and B per module) as a safetensors file with PEFT names. */
export function writeLoraTensors(path: string, info: LoraInfo, tensors: readonly LoraTensors[]): void {
  const out: WriteTensor[] = [];
  for (const t of tensors) {
    const m = info.modules.find((x) => x.layer === t.layer && x.target === t.target);
    if (!m) throw new HayateError('ERR_INTERNAL', `no adapter module for layer ${t.layer} ${t.target}`);
    out.push({ name: peftTensorName(t.layer, t.target, 'A'), dtype: 'F32', shape: [info.rank, m.in], data: Float32Array.from(t.a) });
    out.push({ name: peftTensorName(t.layer, t.target, 'B'), dtype: 'F32', shape: [m.out, info.rank], data: Float32Array.from(t.b) });
  }
  writeSafetensors(path, out, { format: 'pt' });
}

/** Reads tensors written by writeLoraTensors for the model's adapter modules. */
export function readLoraTensors(path: string, info: LoraInfo): LoraTensors[] {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `adapter tensors not found: ${path}`);
  const file = readSafetensors(path);
  return info.modules.map((m) => {
    const a = file.get(peftTensorName(m.layer, m.target, 'A'));
    const b = file.get(peftTensorName(m.layer, m.target, 'B'));
    if (!a || !b) throw new HayateError('ERR_BAD_TENSOR', `${path} lacks the LoRA tensors of layer ${m.layer} ${m.target} (saved for other adapters?)`);
    return { layer: m.layer, target: m.target, a: Float32Array.from(floatData(a)), b: Float32Array.from(floatData(b)) };
  });
}
