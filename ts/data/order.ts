// Deterministic data order: seeded subsets, sharding by rank / world size (for data-parallel scale-out: every rank
// computes the same permutation from the same seed and takes a disjoint part of it), and a resumable
// batch sampler that walks seeded epochs.
import { HayateError } from '../errors.js';
import { deriveSeed, permutation } from './random.js';

export interface ShardOptions {
  rank: number;
  worldSize: number;
  /**
   * Give every rank the same number of items by dropping the last items.length % worldSize (what
   * data-parallel training needs, so ranks run the same number of steps). Default false.
   */
  even?: boolean;
}

function checkRank(rank: number, worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `world size must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new HayateError('ERR_INVALID_ARGUMENT', `rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
}

/** Items rank, rank + worldSize, rank + 2*worldSize, ...: disjoint shards whose union is every item. */
export function shard<T>(items: readonly T[], options: ShardOptions): T[] {
  checkRank(options.rank, options.worldSize);
  const n = options.even ? items.length - (items.length % options.worldSize) : items.length;
  const out: T[] = [];
  for (let i = options.rank; i < n; i += options.worldSize) out.push(items[i]);
  return out;
}

/** Rank and world size from the launcher's environment (RANK, WORLD_SIZE); 0 and 1 when unset. */
export function distributedFromEnv(env: Record<string, string | undefined> = process.env): { rank: number; worldSize: number } {
  const read = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const v = Number(raw);
    if (!Number.isInteger(v)) throw new HayateError('ERR_INVALID_ARGUMENT', `environment variable ${name} must be an integer, got '${raw}'`);
    return v;
  };
  const worldSize = read('WORLD_SIZE', 1);
  const rank = read('RANK', 0);
  checkRank(rank, worldSize);
  return { rank, worldSize };
}

/**
 * `size` items chosen at random (seeded) and returned in their original order; all items when size is
 * undefined or not below the count.
 */
export function seededSubset<T>(items: readonly T[], size: number | undefined, seed: number): T[] {
  if (size === undefined || size >= items.length) return items.slice();
  if (!Number.isInteger(size) || size < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `subset size must be a positive integer, got ${size}`);
  const chosen = permutation(items.length, seed).slice(0, size).sort((a, b) => a - b);
  return chosen.map((i) => items[i]);
}

export interface SamplerOptions {
  /** Items per batch on this rank. */
  batchSize: number;
  seed?: number;
  /** Shuffle each epoch (default true); false walks 0..size-1 in order. */
  shuffle?: boolean;
  rank?: number;
  worldSize?: number;
}

export interface SamplerState {
  /** Epoch of the next item. */
  epoch: number;
  /** Position of the next global batch within that epoch's order. */
  position: number;
}

/**
 * Endless, resumable batches of dataset indices. Epoch e visits the permutation of seed (seed, e); a global
 * batch is batchSize * worldSize consecutive items of that stream (running into the next epoch when one
 * ends) and rank r takes its r-th slice, so ranks never share an item within a global batch.
 */
export class BatchSampler {
  readonly size: number;
  private readonly batchSize: number;
  private readonly seed: number;
  private readonly shuffle: boolean;
  private readonly rank: number;
  private readonly worldSize: number;
  private epoch = 0;
  private position = 0;
  private order: number[] | undefined;
  private orderEpoch = -1;

  constructor(size: number, options: SamplerOptions) {
    if (!Number.isInteger(size) || size < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `cannot sample batches from ${size} items`);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `batch size must be a positive integer, got ${options.batchSize}`);
    this.size = size;
    this.batchSize = options.batchSize;
    this.seed = options.seed ?? 0;
    this.shuffle = options.shuffle ?? true;
    this.rank = options.rank ?? 0;
    this.worldSize = options.worldSize ?? 1;
    checkRank(this.rank, this.worldSize);
  }

  private epochOrder(epoch: number): number[] {
    if (this.orderEpoch !== epoch || !this.order) {
      this.order = this.shuffle ? permutation(this.size, deriveSeed(this.seed, epoch)) : Array.from({ length: this.size }, (_, i) => i);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** The next batch of this rank's indices. */
  next(): number[] {
    const global: number[] = [];
    while (global.length < this.batchSize * this.worldSize) {
      const order = this.epochOrder(this.epoch);
      global.push(order[this.position]);
      this.position++;
      if (this.position === this.size) {
        this.epoch++;
        this.position = 0;
      }
    }
    return global.slice(this.rank * this.batchSize, (this.rank + 1) * this.batchSize);
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  /** Continues from a saved state: the next batch is the one that followed it. */
  restore(state: SamplerState): void {
    if (!Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.position) || state.position < 0 || state.position >= this.size) {
      throw new HayateError('ERR_INVALID_ARGUMENT', `sampler state ${JSON.stringify(state)} does not fit a dataset of ${this.size} items`);
    }
    this.epoch = state.epoch;
    this.position = state.position;
  }
}
