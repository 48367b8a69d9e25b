// RewardPool: runs a set of weighted rewards on batches of completions in a piscina worker pool, each call
// under a time limit. A reward that throws, hangs past the limit (its thread is terminated and replaced),
// returns the wrong number of values or a non-finite one contributes 0 to every completion of that batch,
// with a warning (logged and returned); the pool keeps working and score() never rejects because of a
// reward. Problems found when loading (missing module, nothing usable exported, bad options, duplicate
// names) are HayateErrors from RewardPool.create.
import { existsSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Piscina } from 'piscina';
import { HayateError } from '../errors.js';
import { GRPO_DEFAULTS } from '../training-defaults.js';
import { execArgvFor, workerModule } from '../workers.js';
import { mean, std } from '../metrics/stats.js';
import { makeBuiltinReward } from './builtin.js';
import type { InspectResult, RewardTarget, RewardTask } from './reward-worker.js';
import { parseRewardSpec, type RewardSpec } from './spec.js';
import { checkRewardOutput, type RewardExtra, type RewardFailureKind, type RewardFunction, type RewardOutcome, type RewardPrompt } from './types.js';

export interface RewardPoolOptions {
  /** Time limit of one reward on one batch, in ms (default: the GRPO default, ts/training-defaults.ts). It includes waiting for a free thread. */
  timeoutMs?: number;
  /** Time limit for importing a module at load time, in ms (default 60000). */
  loadTimeoutMs?: number;
  /** Worker threads (default: one per pooled reward, at most 16), so the rewards of one batch run side by side and a hung one delays no other. */
  threads?: number;
  /** Where warnings are logged (default: stderr). */
  log?: (message: string) => void;
  /** Base directory of relative module paths in string specs (default: process.cwd()). */
  cwd?: string;
}

export interface RewardWarning {
  /** The reward's name. */
  reward: string;
  kind: RewardFailureKind;
  message: string;
  /** Completions in the batch (all got 0 from this reward). */
  batchSize: number;
}

export interface RewardScores {
  /** Reward names, in spec order. */
  names: string[];
  weights: number[];
  /** Unweighted values per reward name, one per completion (zeros for a reward that failed). */
  values: Record<string, number[]>;
  /** Weighted sum per completion. */
  total: number[];
  warnings: RewardWarning[];
  /** `rewards/<name>/mean`, `rewards/<name>/std` and `reward` (mean total) for this batch. */
  metrics: Record<string, number>;
}

export interface RewardInfo {
  name: string;
  weight: number;
  source: 'builtin' | 'module' | 'function';
  /** Module path, for module rewards. */
  path?: string;
}

type Runner = { info: RewardInfo } & ({ target: RewardTarget } | { fn: RewardFunction });


function defaultLog(message: string): void {
  process.stderr.write(`hayate: warning: ${message}\n`);
}

function checkWeight(name: string, weight: number | undefined): number {
  const w = weight ?? 1;
  if (!Number.isFinite(w)) throw new HayateError('ERR_INVALID_ARGUMENT', `reward '${name}': weight must be a finite number, got ${w}`);
  return w;
}

function positiveInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `${what} must be a positive integer, got ${v}`);
  return v;
}

export class RewardPool {
  readonly rewards: readonly RewardInfo[];
  private readonly runners: Runner[];
  private readonly pool: Piscina<RewardTask, RewardOutcome | InspectResult> | undefined;
  private readonly timeoutMs: number;
  private readonly log: (message: string) => void;
  private closed = false;

  private constructor(runners: Runner[], pool: Piscina<RewardTask, RewardOutcome | InspectResult> | undefined, timeoutMs: number, log: (message: string) => void) {
    this.runners = runners;
    this.rewards = runners.map((r) => r.info);
    this.pool = pool;
    this.timeoutMs = timeoutMs;
    this.log = log;
  }

  /** Loads and checks every reward (module imports happen in the pool's threads). */
  static async create(specs: readonly (RewardSpec | string)[], options: RewardPoolOptions = {}): Promise<RewardPool> {
    if (specs.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'no rewards given');
    const timeoutMs = positiveInt('reward timeoutMs', options.timeoutMs ?? GRPO_DEFAULTS.rewardTimeoutMs);
    const loadTimeoutMs = positiveInt('reward loadTimeoutMs', options.loadTimeoutMs ?? 60_000);
    const parsed = specs.map((s) => (typeof s === 'string' ? parseRewardSpec(s, options.cwd) : s));

    const modulePaths = new Set<string>();
    for (const s of parsed) {
      if (s.kind !== 'module') continue;
      if (!existsSync(s.path)) throw new HayateError('ERR_NOT_FOUND', `reward module not found: ${s.path}`);
      if (!statSync(s.path).isFile()) throw new HayateError('ERR_INVALID_ARGUMENT', `reward module is not a file: ${s.path}`);
      modulePaths.add(s.path);
    }
    const pooled = parsed.filter((s) => s.kind !== 'function').length;
    let pool: Piscina<RewardTask, RewardOutcome | InspectResult> | undefined;
    if (pooled > 0) {
      const worker = workerModule(import.meta.url, 'reward-worker');
      const threads = positiveInt('reward threads', options.threads ?? Math.min(16, pooled));
      pool = new Piscina({
        filename: worker.filename,
        execArgv: execArgvFor([worker.filename, ...modulePaths]),
        minThreads: threads,
        maxThreads: threads,
        idleTimeout: 60_000,
      });
    }
    try {
      const runners: Runner[] = [];
      const exportsOf = new Map<string, string[]>();
      for (const path of modulePaths) {
        const signal = AbortSignal.timeout(loadTimeoutMs);
        try {
          exportsOf.set(path, ((await pool!.run({ type: 'inspect', path }, { signal })) as InspectResult).functions);
        } catch (err) {
          const why = signal.aborted ? `did not load within ${loadTimeoutMs} ms` : (err as Error).message;
          throw new HayateError('ERR_INVALID_ARGUMENT', `reward module ${path} failed to load: ${why}`, { cause: err });
        }
      }
      for (const s of parsed) {
        if (s.kind === 'builtin') {
          const options = s.options ?? {};
          makeBuiltinReward(s.name, options); // validates the name and options here, with a typed error
          const name = s.alias ?? s.name;
          runners.push({ info: { name, weight: checkWeight(name, s.weight), source: 'builtin' }, target: { builtin: s.name, options } });
        } else if (s.kind === 'function') {
          if (typeof s.fn !== 'function') throw new HayateError('ERR_INVALID_ARGUMENT', `reward '${s.name}': fn is not a function`);
          runners.push({ info: { name: s.name, weight: checkWeight(s.name, s.weight), source: 'function' }, fn: s.fn });
        } else {
          const functions = exportsOf.get(s.path) ?? [];
          if (functions.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', `reward module ${s.path} exports no functions: export (prompts, completions, extra) => number[] functions`);
          if (s.export !== undefined && !functions.includes(s.export)) {
            throw new HayateError('ERR_INVALID_ARGUMENT', `reward module ${s.path} has no exported function '${s.export}' (its exported functions: ${functions.join(', ')})`);
          }
          const chosen = s.export !== undefined ? [s.export] : functions;
          if (s.alias !== undefined && chosen.length > 1) throw new HayateError('ERR_INVALID_ARGUMENT', `reward module ${s.path}: an alias needs a single export`);
          for (const fn of chosen) {
            const name = s.alias ?? (fn === 'default' ? basename(s.path, extname(s.path)) : fn);
            runners.push({ info: { name, weight: checkWeight(name, s.weight), source: 'module', path: s.path }, target: { path: s.path, export: fn } });
          }
        }
      }
      const seen = new Set<string>();
      for (const r of runners) {
        if (seen.has(r.info.name)) throw new HayateError('ERR_INVALID_ARGUMENT', `two rewards are named '${r.info.name}': give one an alias`);
        seen.add(r.info.name);
      }
      return new RewardPool(runners, pool, timeoutMs, options.log ?? defaultLog);
    } catch (err) {
      await pool?.destroy();
      throw err;
    }
  }

  /** Metric names this pool reports (`rewards/<name>/mean`, `rewards/<name>/std`). */
  get metricNames(): string[] {
    return this.rewards.flatMap((r) => [`rewards/${r.name}/mean`, `rewards/${r.name}/std`]);
  }

  /**
   * Scores a batch: prompts[i] is the prompt of completions[i]; arrays in `extra` are aligned with the
   * completions. Resolves with every reward's values, the weighted totals and the warnings of this batch.
   */
  async score(prompts: readonly RewardPrompt[], completions: readonly string[], extra: RewardExtra = {}): Promise<RewardScores> {
    if (this.closed) throw new HayateError('ERR_DISPOSED', 'reward pool has been closed');
    if (prompts.length !== completions.length) {
      throw new HayateError('ERR_INVALID_ARGUMENT', `score: ${prompts.length} prompts for ${completions.length} completions (pass each completion's prompt)`);
    }
    const ps = [...prompts];
    const cs = [...completions];
    try {
      structuredClone(extra);
    } catch (err) {
      throw new HayateError('ERR_INVALID_ARGUMENT', `score: extra must hold plain data (it is copied to worker threads): ${(err as Error).message}`, { cause: err });
    }
    const outcomes = await Promise.all(this.runners.map((r) => this.callOne(r, ps, cs, extra)));
    const names = this.rewards.map((r) => r.name);
    const weights = this.rewards.map((r) => r.weight);
    const values: Record<string, number[]> = {};
    const warnings: RewardWarning[] = [];
    const total = new Array<number>(cs.length).fill(0);
    const metrics: Record<string, number> = {};
    outcomes.forEach((o, k) => {
      const name = names[k];
      let v: number[];
      if (o.ok) v = o.values;
      else {
        v = new Array<number>(cs.length).fill(0);
        const w: RewardWarning = { reward: name, kind: o.kind, message: o.message, batchSize: cs.length };
        warnings.push(w);
        this.log(`reward '${name}' ${o.message}; it gives 0 to the ${cs.length} completions of this batch`);
      }
      values[name] = v;
      for (let i = 0; i < v.length; i++) total[i] += weights[k] * v[i];
      metrics[`rewards/${name}/mean`] = cs.length > 0 ? mean(v) : 0;
      metrics[`rewards/${name}/std`] = cs.length > 0 ? std(v) : 0;
    });
    metrics.reward = cs.length > 0 ? mean(total) : 0;
    return { names, weights, values, total, warnings, metrics };
  }

  private async callOne(r: Runner, prompts: RewardPrompt[], completions: string[], extra: RewardExtra): Promise<RewardOutcome> {
    if (completions.length === 0) return { ok: true, values: [] };
    if ('fn' in r) return this.callInProcess(r.fn, prompts, completions, extra);
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      return (await this.pool!.run({ type: 'call', target: r.target, prompts, completions, extra }, { signal })) as RewardOutcome;
    } catch (err) {
      if (signal.aborted) return { ok: false, kind: 'timeout', message: `did not finish within ${this.timeoutMs} ms (its thread was stopped)` };
      return { ok: false, kind: 'error', message: `failed: ${(err as Error)?.message ?? String(err)}` };
    }
  }

  /** Plain-function rewards run on this thread: errors and async hangs are caught, a synchronous hang is not. */
  private async callInProcess(fn: RewardFunction, prompts: RewardPrompt[], completions: string[], extra: RewardExtra): Promise<RewardOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
    });
    try {
      const output = await Promise.race([Promise.resolve().then(() => fn(prompts, completions, extra)), timeout]);
      if (output === 'timeout') return { ok: false, kind: 'timeout', message: `did not finish within ${this.timeoutMs} ms` };
      return checkRewardOutput(output, completions.length);
    } catch (err) {
      return { ok: false, kind: 'error', message: `threw: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool?.destroy();
  }
}
