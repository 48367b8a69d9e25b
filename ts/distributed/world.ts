// The World: this process's handle on a data-parallel job (its rank, the ranks' count, the collectives
// between them). MPI underneath when an MPI launcher started the process and the addon has MPI; otherwise
// a world of one process whose collectives are identities, so the same training code runs either way.
import { writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { fromNative, HayateError } from '../errors.js';
import { native, type NativeCollectives, type NativeWorldInfo } from '../native.js';
import { isLaunched, launchedWorldSize } from './launcher.js';

// Re-exported: setting up a job needs them next to initWorld.
export { launchedWorldSize } from './launcher.js';
export { threadsPerRank } from './threads.js';

export interface World {
  readonly rank: number;
  readonly size: number;
  /** Rank among the processes on this machine (to pick a GPU, to split the cores). */
  readonly localRank: number;
  readonly localSize: number;
  /** Rank 0: the one that logs, writes checkpoints and metrics. */
  readonly isMain: boolean;
  /** True when the collectives go through MPI. */
  readonly mpi: boolean;
  /** Sums `data` over the ranks, in place; resolves to the same array. Do not touch it until then. */
  allReduceSum<T extends Float64Array | Float32Array>(data: T): Promise<T>;
  allReduceSumNumbers(values: readonly number[]): Promise<number[]>;
  /** Every rank's value, in rank order (values must be JSON: they cross as JSON text). */
  allGatherJson<T>(value: T): Promise<T[]>;
  /** Rank `root`'s value on every rank (the others' `value` is ignored). */
  broadcastJson<T>(value: T, root?: number): Promise<T>;
  barrier(): Promise<void>;
  /** Prints `hayate: rank R/N: <message>` to stderr and ends every process of the job with `code`. */
  abort(message: string, code?: number): never;
  /** Ends MPI (also done at a clean exit, code 0); after it, MPI collectives reject. Idempotent. */
  finalize(): void;
}

/** The collectives a World runs on: the addon's, or the identities of a world of one. */
type Collectives = Pick<NativeCollectives, 'allReduceSum' | 'broadcast' | 'barrier' | 'allGather' | 'abort' | 'finalize'>;

const oneProcess: Collectives = {
  allReduceSum: async (data) => data,
  broadcast: async (data) => data,
  barrier: async () => undefined,
  allGather: async (value) => [value],
  abort: (code, message) => {
    if (message) writeSync(2, `${message}\n`);
    process.exit(code);
  },
  finalize: () => undefined,
};

/** A launcher started N > 1 ranks, but this build of the addon has no MPI to connect them. */
export class NoMpiError extends HayateError {
  readonly ranks: number;
  constructor(ranks: number) {
    super(
      'ERR_NATIVE_ADDON',
      `this job has ${ranks} ranks (an MPI launcher started it), but hayate's native addon was built without MPI, ` +
        `so every rank would train alone. Install MPI's development files (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin), ` +
        'then rebuild the addon from a clean build directory (in the hayate package: `npx cmake-js rebuild --out build-cmake`, ' +
        'or remove build-cmake/ and run `npm rebuild`); the build log says "hayate: MPI collectives enabled".',
    );
    this.name = 'NoMpiError';
    this.ranks = ranks;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// JSON text of a value, or undefined when it has none (undefined, a function, a BigInt, a cycle). A rank
// must still take part in the collective then, and report the failure to all ranks, or the others hang.
function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

function checkArray(data: unknown): void {
  if (!(data instanceof Float64Array || data instanceof Float32Array))
    throw new HayateError('ERR_INVALID_ARGUMENT', 'allReduceSum: data must be a Float64Array or a Float32Array');
}

class CollectiveWorld implements World {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  readonly isMain: boolean;
  readonly mpi: boolean;
  // The World's operations run one after another in call order: the JSON ones are two collectives each,
  // and every rank must issue the same collectives in the same order.
  private tail: Promise<unknown> = Promise.resolve();

  constructor(info: NativeWorldInfo, private readonly c: Collectives) {
    this.rank = info.rank;
    this.size = info.size;
    this.localRank = info.localRank;
    this.localSize = info.localSize;
    this.isMain = info.rank === 0;
    this.mpi = info.mpi;
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op).catch((e: unknown) => {
      throw fromNative(e);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  allReduceSum<T extends Float64Array | Float32Array>(data: T): Promise<T> {
    return this.serial(async () => {
      checkArray(data);
      return this.c.allReduceSum(data);
    });
  }

  async allReduceSumNumbers(values: readonly number[]): Promise<number[]> {
    return Array.from(await this.allReduceSum(Float64Array.from(values)));
  }

  allGatherJson<T>(value: T): Promise<T[]> {
    return this.serial(async () => {
      const all = await this.c.allGather(toJson(value) ?? '');  // '' is never JSON text: "no value"
      const bad = all.findIndex((s) => s === '');
      if (bad >= 0) throw new HayateError('ERR_INVALID_ARGUMENT', `allGatherJson: rank ${bad}'s value has no JSON form`);
      return all.map((s) => JSON.parse(s) as T);
    });
  }

  broadcastJson<T>(value: T, root = 0): Promise<T> {
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      return Promise.reject(new HayateError('ERR_INVALID_ARGUMENT', `broadcastJson: root ${root} is not a rank of this world of ${this.size}`));
    return this.serial(async () => {
      // The root's byte count first (-1: no JSON form), so the others can size their buffers.
      const text = this.rank === root ? toJson(value) : undefined;
      const payload = text === undefined ? undefined : encoder.encode(text);
      const head = new Float64Array([payload ? payload.length : -1]);
      await this.c.broadcast(new Uint8Array(head.buffer), root);
      if (head[0] < 0) throw new HayateError('ERR_INVALID_ARGUMENT', `broadcastJson: rank ${root}'s value has no JSON form`);
      const body = this.rank === root && payload ? payload : new Uint8Array(head[0]);
      await this.c.broadcast(body, root);
      return JSON.parse(decoder.decode(body)) as T;
    });
  }

  barrier(): Promise<void> {
    return this.serial(() => this.c.barrier());
  }

  abort(message: string, code = 1): never {
    // Not queued behind pending collectives: those may be what never finishes.
    return this.c.abort(code, `hayate: rank ${this.rank}/${this.size}: ${message}`);
  }

  finalize(): void {
    this.c.finalize();
  }
}

/** The world of this process alone: rank 0 of 1, every collective an identity. */
export function singleProcessWorld(): World {
  return new CollectiveWorld({ rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false }, oneProcess);
}

export interface InitWorldOptions {
  /** The environment to read the launcher from (default process.env; MPI itself reads the real one). */
  env?: Record<string, string | undefined>;
  /** The addon's collectives (default: the loaded addon's; loaded only when a launcher started the process). */
  collectives?: NativeCollectives;
}

let finalizeHooked = false;

/**
 * Joins the job this process belongs to: MPI when an MPI launcher started it, the world of one process
 * otherwise. Throws NoMpiError when the launcher started several ranks but the addon has no MPI.
 */
export async function initWorld(options: InitWorldOptions = {}): Promise<World> {
  const env = options.env ?? process.env;
  if (!isLaunched(env)) return singleProcessWorld();
  const announced = launchedWorldSize(env);
  const c = options.collectives ?? native().collectives;
  if (!c.builtWithMpi()) {
    if (announced > 1) throw new NoMpiError(announced);
    return singleProcessWorld();
  }
  let info: NativeWorldInfo;
  try {
    info = c.init();
  } catch (e) {
    throw fromNative(e);
  }
  if (announced > 1 && info.size !== announced) {
    // e.g. MPICH's launcher starting an Open MPI build: each rank comes up as a world of one.
    throw new HayateError(
      'ERR_BACKEND',
      `the launcher announced ${announced} ranks but MPI connected ${info.size}: start the job with the launcher of the MPI hayate was built with (for Open MPI, its mpirun)`,
    );
  }
  if (!finalizeHooked && isMainThread) {
    // Open MPI treats a rank that exits without MPI_Finalize as failed and fails the job, so a clean exit
    // finalizes. A failing exit does not: finalizing waits for every rank, and the others may be waiting in
    // a collective for this one; exiting without it makes the launcher end them. (In a worker thread,
    // 'exit' is the worker's, not the process's.)
    finalizeHooked = true;
    process.once('exit', (code) => {
      if (code === 0) c.finalize();
    });
  }
  return new CollectiveWorld(info, c);
}
