// Data-parallel worlds (ts/distributed/): the world of one process, launcher detection, the error for a
// multi-rank job on a build without MPI, the addon's argument checks, and real 2-rank jobs under mpirun
// (tests/fixtures/collectives-*.mjs, which import the built dist/).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HayateError } from '../ts/errors.js';
import { initWorld, isLaunched, launchedRank, launchedWorldSize, NoMpiError, singleProcessWorld, threadsPerRank } from '../ts/distributed/index.js';
import { native, type NativeCollectives, type NativeWorldInfo } from '../ts/native.js';

const root = join(import.meta.dirname, '..');
const fixtures = join(import.meta.dirname, 'fixtures');
const distEntry = join(root, 'dist', 'distributed', 'index.js');

describe('launcher detection', () => {
  it('launchedWorldSize reads what each launcher sets, 1 without one', () => {
    expect(launchedWorldSize({})).toBe(1);
    expect(launchedWorldSize({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2' })).toBe(4);
    expect(launchedWorldSize({ PMI_RANK: '0', PMI_SIZE: '3' })).toBe(3);
    expect(launchedWorldSize({ PMI_SIZE: '3' })).toBe(1);  // PMI_SIZE alone is not a launched rank
    expect(launchedWorldSize({ PMIX_RANK: '1', PMIX_SIZE: '6' })).toBe(6);
    expect(launchedWorldSize({ SLURM_PROCID: '0', SLURM_STEP_ID: '0', SLURM_STEP_NUM_TASKS: '8', SLURM_NTASKS: '16' })).toBe(8);
    expect(launchedWorldSize({ SLURM_PROCID: '0', SLURM_STEP_ID: '0', SLURM_NTASKS: '16' })).toBe(16);
    // a plain `node` in an sbatch script: Slurm variables but no step, so not a rank
    expect(launchedWorldSize({ SLURM_PROCID: '0', SLURM_NTASKS: '16' })).toBe(1);
    expect(isLaunched({ SLURM_PROCID: '0', SLURM_NTASKS: '16' })).toBe(false);
    expect(launchedWorldSize({ OMPI_COMM_WORLD_SIZE: 'two' })).toBe(1);
    expect(launchedWorldSize({ OMPI_COMM_WORLD_SIZE: '0' })).toBe(1);
    expect(isLaunched({ OMPI_COMM_WORLD_SIZE: '1' })).toBe(true);
    expect(isLaunched({ PMIX_RANK: '0' })).toBe(true);
    expect(isLaunched({})).toBe(false);
  });

  it('launchedRank reads the rank before MPI exists', () => {
    expect(launchedRank({})).toBe(0);
    expect(launchedRank({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2' })).toBe(2);
    expect(launchedRank({ PMI_RANK: '1', PMI_SIZE: '3' })).toBe(1);
    expect(launchedRank({ SLURM_PROCID: '5', SLURM_NTASKS: '16' })).toBe(0);  // not launched
  });

  it('threadsPerRank splits the cores evenly, at least one each', () => {
    expect(threadsPerRank(16, 4)).toBe(4);
    expect(threadsPerRank(7, 2)).toBe(3);
    expect(threadsPerRank(2, 4)).toBe(1);
    expect(threadsPerRank(8, 1)).toBe(8);
    expect(threadsPerRank(8, 0)).toBe(8);
    expect(threadsPerRank(0, 2)).toBe(1);
  });
});

describe('the world of one process', () => {
  it('initWorld without a launcher: rank 0 of 1, identity collectives', async () => {
    const world = await initWorld({ env: {} });
    expect([world.rank, world.size, world.localRank, world.localSize, world.isMain, world.mpi]).toEqual([0, 1, 0, 1, true, false]);
    const data = new Float64Array([1.5, -2, 3]);
    expect(await world.allReduceSum(data)).toBe(data);
    expect(Array.from(data)).toEqual([1.5, -2, 3]);
    const f = new Float32Array([0.5]);
    expect(await world.allReduceSum(f)).toBe(f);
    expect(await world.allReduceSumNumbers([1, 2.5])).toEqual([1, 2.5]);
    expect(await world.allGatherJson({ a: [1, 'x'] })).toEqual([{ a: [1, 'x'] }]);
    expect(await world.broadcastJson({ b: null })).toEqual({ b: null });
    await world.barrier();
    await expect(world.broadcastJson(1, 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(world.allGatherJson(undefined)).rejects.toThrow(/rank 0's value has no JSON form/);
    await expect(world.allReduceSum([1, 2] as unknown as Float64Array)).rejects.toBeInstanceOf(HayateError);
    world.finalize();
  });

  it('abort prints "hayate: rank 0/1: <message>" and exits with the code', () => {
    if (!existsSync(distEntry)) throw new Error(`${distEntry} is missing: run \`npm run build:ts\``);
    const script = `import(${JSON.stringify(distEntry)}).then((m) => m.singleProcessWorld().abort('bad input', 3))`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('hayate: rank 0/1: bad input');
  });
});

// A fake addon: the checks initWorld makes before any MPI call.
function fakeCollectives(builtWithMpi: boolean, world: NativeWorldInfo): NativeCollectives {
  const single = singleProcessWorld();
  return {
    builtWithMpi: () => builtWithMpi,
    launcherWorldSize: () => world.size,
    init: () => world,
    world: () => world,
    allReduceSum: (d) => single.allReduceSum(d),
    broadcast: async (d) => d,
    barrier: () => single.barrier(),
    allGather: async (s) => [s],
    abort: () => {
      throw new Error('abort called');
    },
    finalize: () => undefined,
  };
}

describe('initWorld checks', () => {
  const launched2 = { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' };

  it('a 2-rank job on a build without MPI fails with one clear error', async () => {
    const err = await initWorld({ env: launched2, collectives: fakeCollectives(false, { rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoMpiError);
    expect(err).toBeInstanceOf(HayateError);
    const e = err as NoMpiError;
    expect(e.code).toBe('ERR_NATIVE_ADDON');
    expect(e.ranks).toBe(2);
    expect(e.message).toContain('this job has 2 ranks');
    expect(e.message).toContain('built without MPI');
    expect(e.message).toContain('libopenmpi-dev');
    expect(e.message).toContain('npx cmake-js rebuild --out build-cmake');
  });

  it('a launched job of one rank without MPI is the world of one', async () => {
    const world = await initWorld({ env: { OMPI_COMM_WORLD_SIZE: '1' }, collectives: fakeCollectives(false, { rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false }) });
    expect([world.rank, world.size, world.mpi]).toEqual([0, 1, false]);
  });

  it('MPI connecting fewer ranks than the launcher announced is an error, not N lone jobs', async () => {
    const c = fakeCollectives(true, { rank: 0, size: 1, localRank: 0, localSize: 1, mpi: true });
    await expect(initWorld({ env: launched2, collectives: c })).rejects.toThrow(/announced 2 ranks but MPI connected 1/);
  });
});

describe('the addon collectives in a plain run', () => {
  it('a world of one: no MPI initialised without a launcher; arguments checked at the boundary', async () => {
    const c = native().collectives;
    expect(typeof c.builtWithMpi()).toBe('boolean');
    expect(c.launcherWorldSize()).toBe(0);
    expect(c.init()).toEqual({ rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false });
    expect(c.world()).toEqual({ rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false });
    const d = new Float64Array([1, 2]);
    expect(await c.allReduceSum(d)).toBe(d);
    const u = new Uint8Array([9, 8]);
    expect(await c.broadcast(u, 0)).toBe(u);
    expect(Array.from(u)).toEqual([9, 8]);
    await c.barrier();
    expect(await c.allGather('hi')).toEqual(['hi']);
    for (const bad of [() => c.allReduceSum([1] as unknown as Float64Array), () => c.allReduceSum(new Int32Array(2) as unknown as Float64Array), () => c.broadcast(new Float64Array(1) as unknown as Uint8Array, 0), () => c.broadcast(u, 1), () => c.broadcast(u, -1), () => c.allGather(5 as unknown as string), () => c.abort('x' as unknown as number), () => c.abort(1, 7 as unknown as string)])
      expect(bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }) as unknown as Error);
  });
});

// --- real jobs under mpirun ------------------------------------------------------------------------
const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const haveMpirun = mpirun.status === 0;
const openMpi = /Open MPI|OpenRTE/.test(mpirun.stdout ?? '');  // the flags below are Open MPI's
const addonNoMpi = (() => {
  try {
    return native().collectives.builtWithMpi() ? '' : 'the addon was built without MPI';
  } catch (e) {
    return `the addon did not load: ${(e as Error).message}`;
  }
})();
const skipReason = !haveMpirun ? 'mpirun is not on PATH' : !openMpi ? "mpirun is not Open MPI's" : addonNoMpi;
if (skipReason) console.warn(`distributed.test.ts: skipping the 2-rank jobs: ${skipReason}`);

function mpirun2(script: string) {
  if (!existsSync(distEntry)) throw new Error(`${distEntry} is missing: run \`npm run build:ts\``);
  // Open MPI refuses root without the flag and 2 ranks on a smaller machine without --oversubscribe.
  const args = ['--allow-run-as-root', '--oversubscribe', '-np', '2', process.execPath, join(fixtures, script)];
  return spawnSync('mpirun', args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMPI_MCA_btl_vader_single_copy_mechanism: 'none' } });
}

describe('2-rank jobs (mpirun)', () => {
  it.skipIf(!!skipReason)(`every collective across 2 ranks${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
    const r = mpirun2('collectives-job.mjs');
    if (r.status !== 0) console.error(r.stdout, r.stderr);
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const results = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('RESULT '))
      .map((l) => JSON.parse(l.slice('RESULT '.length)) as { rank: number })
      .sort((a, b) => a.rank - b.rank);
    const common = {
      size: 2,
      localSize: 2,
      mpi: true,
      big: { inPlace: true, wrong: 0, total: 4_498_500_000, first: 1, last: 2998 },
      small32: [1, 3, -1],
      numbers: [3, 20, 0.5],
      empty: [],
      gathered: [
        { rank: 0, name: 'r0', list: [0] },
        { rank: 1, name: 'r1', list: [0, 1] },
      ],
      fromRoot0: { from: 0, text: 'héllo ✓' },
      fromRoot1: [1, 'one', { nested: true }],
      together: [[1], [0, 10], null, 'x'],
      native: { a: 3, b: 30, bytes: [7, 7, 7, 7], gathered: ['s0', 's1'] },
      noJson: "ERR_INVALID_ARGUMENT: allGatherJson: rank 1's value has no JSON form",
    };
    expect(results).toEqual([
      { rank: 0, localRank: 0, isMain: true, ...common },
      { rank: 1, localRank: 1, isMain: false, ...common },
    ]);
  });

  it.skipIf(!!skipReason)(`abort on one rank ends the whole job${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
    const started = Date.now();
    const r = mpirun2('collectives-abort.mjs');
    expect(r.error).toBeUndefined();  // not killed by the timeout
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('hayate: rank 1/2: boom');
    expect(r.stdout).not.toContain('passed a barrier');
  });
});
