// Built-in rewards, reward specs, and the reward worker pool (failures give zeros + warnings, never stop it).
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HayateError } from '../ts/errors.js';
import { correctnessReward, formatReward, lengthPenalty, makeBuiltinReward, overlongPenalty } from '../ts/rewards/builtin.js';
import { RewardPool, type RewardWarning } from '../ts/rewards/pool.js';
import { parseRewardSpec } from '../ts/rewards/spec.js';
import { checkRewardOutput } from '../ts/rewards/types.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/rewards/', import.meta.url));

describe('built-in rewards', () => {
  const completions = ['so \\boxed{18}', 'the answer is 7', 'nothing', '\\boxed{}'];
  const prompts = completions.map(() => 'q');

  it('correctness: 1 when the extracted answer equals the ground truth', async () => {
    expect(await correctnessReward(prompts, completions, { answers: ['18', '7', '3', '0'] })).toEqual([1, 1, 0, 0]);
    expect(() => correctnessReward(prompts, completions, {})).toThrow(/extra.answers/);
  });

  it('format: 0.1 for a complete non-empty box', async () => {
    expect(await formatReward()(prompts, completions, {})).toEqual([0.1, 0, 0, 0]);
    expect(await formatReward({ value: 0.5 })(prompts, completions, {})).toEqual([0.5, 0, 0, 0]);
  });

  it('length penalty is linear from target to maxLength', async () => {
    const f = lengthPenalty({ maxLength: 100, target: 50 });
    expect(await f(['a', 'b', 'c', 'd'], ['', '', '', ''], { completionLengths: [10, 50, 75, 200] })).toEqual([-0, -0, -0.5, -1]);
    expect(await lengthPenalty({ maxLength: 10 })(['a'], ['12345'], {})).toEqual([-0.5]);
  });

  it('overlong penalty follows DAPO', async () => {
    const f = overlongPenalty({ maxLength: 512, buffer: 128 });
    const lens = [0, 384, 385, 448, 512, 600];
    const got = (await f(lens.map(() => 'p'), lens.map(() => ''), { completionLengths: lens })) as number[];
    expect(got).toEqual([0, 0, -1 / 128, -0.5, -1, -1]);
  });

  it('rejects bad options with typed errors', () => {
    expect(() => makeBuiltinReward('overlong', {})).toThrow(HayateError);
    expect(() => makeBuiltinReward('overlong', { maxLength: 10, buffer: 20 })).toThrow(/buffer/);
    expect(() => makeBuiltinReward('format', { nope: 1 })).toThrow(/no option 'nope'/);
    expect(() => makeBuiltinReward('bogus')).toThrow(/unknown built-in/);
  });

  it('checks outputs', () => {
    expect(checkRewardOutput([1, 2], 2)).toEqual({ ok: true, values: [1, 2] });
    expect(checkRewardOutput(Float32Array.of(1, 2), 2)).toEqual({ ok: true, values: [1, 2] });
    expect(checkRewardOutput([1], 2)).toMatchObject({ ok: false, kind: 'wrong-length' });
    expect(checkRewardOutput([1, Infinity], 2)).toMatchObject({ ok: false, kind: 'not-a-number' });
    expect(checkRewardOutput([1, '2'], 2)).toMatchObject({ ok: false, kind: 'not-a-number' });
    expect(checkRewardOutput({ length: 2 }, 2)).toMatchObject({ ok: false, kind: 'not-an-array' });
  });
});

describe('reward specs', () => {
  it('parses built-ins, options and weights', () => {
    expect(parseRewardSpec('correctness')).toEqual({ kind: 'builtin', name: 'correctness' });
    expect(parseRewardSpec('format=0.5')).toEqual({ kind: 'builtin', name: 'format', weight: 0.5 });
    expect(parseRewardSpec('overlong(maxLength=512, buffer=128)=-1')).toEqual({ kind: 'builtin', name: 'overlong', weight: -1, options: { maxLength: 512, buffer: 128 } });
  });

  it('parses module paths with an export and a weight', () => {
    expect(parseRewardSpec('./my_rewards.js:myFn=0.5', '/work')).toEqual({ kind: 'module', path: '/work/my_rewards.js', export: 'myFn', weight: 0.5 });
    expect(parseRewardSpec('/abs/r.mjs', '/work')).toEqual({ kind: 'module', path: '/abs/r.mjs' });
    expect(parseRewardSpec('rewards.js=2', '/w')).toEqual({ kind: 'module', path: '/w/rewards.js', weight: 2 });
  });

  it('rejects bad specs', () => {
    expect(() => parseRewardSpec('')).toThrow(/empty/);
    expect(() => parseRewardSpec('correctnes')).toThrow(/not a built-in/);
    expect(() => parseRewardSpec('format=abc')).toThrow(/weight must be a number/);
    expect(() => parseRewardSpec('./r.js:1bad')).toThrow(/export name/);
    expect(() => parseRewardSpec('overlong(maxLength)')).toThrow(/key=value/);
  });
});

describe('RewardPool', () => {
  let pool: RewardPool;
  const logged: string[] = [];
  const completions = ['so \\boxed{18}', 'the answer is 7', 'nothing'];
  const prompts = ['p1', 'p2', 'p3'];
  const extra = { answers: ['18', '7', '3'] };

  beforeAll(async () => {
    pool = await RewardPool.create(
      ['correctness', 'format=0.5', `${FIXTURES}good.mjs`, `${FIXTURES}bad.mjs`, `${FIXTURES}commonjs.cjs:alwaysOne=2`, { kind: 'function', name: 'inProcess', fn: (_p, c) => c.map(() => 0.25), weight: 4 }],
      // generous enough that the good rewards finish even on a loaded 2-core machine (worker threads restart
      // after each round's hanging rewards are stopped)
      { timeoutMs: 2500, log: (m) => logged.push(m) },
    );
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('names its rewards and metrics', () => {
    expect(pool.rewards.map((r) => r.name)).toEqual(['correctness', 'format', 'lengthBonus', 'mentionsAnswer', 'hangs', 'hangsAsync', 'nan', 'notArray', 'okay', 'throws', 'throwsString', 'wrongLength', 'alwaysOne', 'inProcess']);
    expect(pool.metricNames).toContain('rewards/correctness/mean');
    expect(pool.metricNames).toContain('rewards/alwaysOne/std');
  });

  it('gives zeros and a warning for each failing reward, and keeps working', async () => {
    for (let round = 0; round < 2; round++) {
      logged.length = 0;
      const s = await pool.score(prompts, completions, extra);
      expect(s.values.correctness).toEqual([1, 1, 0]);
      expect(s.values.format).toEqual([0.1, 0, 0]);
      expect(s.values.lengthBonus).toEqual(completions.map((c) => c.length / 100));
      expect(s.values.mentionsAnswer).toEqual([1, 1, 0]);
      expect(s.values.okay).toEqual([0.5, 0.5, 0.5]);
      expect(s.values.alwaysOne).toEqual([1, 1, 1]);
      expect(s.values.inProcess).toEqual([0.25, 0.25, 0.25]);
      const byName = Object.fromEntries(s.warnings.map((w: RewardWarning) => [w.reward, w.kind]));
      expect(byName).toEqual({ hangs: 'timeout', hangsAsync: 'timeout', nan: 'not-a-number', notArray: 'not-an-array', throws: 'error', throwsString: 'error', wrongLength: 'wrong-length' });
      for (const name of Object.keys(byName)) expect(s.values[name]).toEqual([0, 0, 0]);
      expect(s.warnings.find((w) => w.reward === 'throws')?.message).toMatch(/reward exploded/);
      expect(logged).toHaveLength(7);
      // total = sum of weight * value
      const expected = completions.map((_, i) => s.names.reduce((acc, n, k) => acc + s.weights[k] * s.values[n][i], 0));
      s.total.forEach((t, i) => expect(t).toBeCloseTo(expected[i], 12));
      expect(s.metrics['rewards/correctness/mean']).toBeCloseTo(2 / 3, 12);
      expect(s.metrics['rewards/okay/std']).toBe(0);
      expect(s.metrics.reward).toBeCloseTo(s.total.reduce((a, b) => a + b, 0) / 3, 12);
    }
  }, 60_000);

  it('rejects mismatched prompts and non-cloneable extra', async () => {
    await expect(pool.score(['a'], ['x', 'y'])).rejects.toThrow(/1 prompts for 2 completions/);
    await expect(pool.score(['a'], ['x'], { answers: ['1'], f: () => 1 })).rejects.toThrow(/plain data/);
  });

  it('scores an empty batch', async () => {
    const s = await pool.score([], [], { answers: [] });
    expect(s.total).toEqual([]);
    expect(s.warnings).toEqual([]);
  });
});

describe('RewardPool load errors', () => {
  it('a missing module is ERR_NOT_FOUND', async () => {
    await expect(RewardPool.create([`${FIXTURES}missing.mjs`])).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });
  it('a module exporting no functions is a clear error', async () => {
    await expect(RewardPool.create([`${FIXTURES}nothing.mjs`])).rejects.toThrow(/exports no functions/);
  });
  it('a module that throws while loading is a clear error', async () => {
    await expect(RewardPool.create([`${FIXTURES}broken.mjs`])).rejects.toThrow(/failed to load: cannot initialise/);
  });
  it('an export that does not exist lists the ones that do', async () => {
    await expect(RewardPool.create([`${FIXTURES}good.mjs:nope`])).rejects.toThrow(/no exported function 'nope' \(its exported functions: lengthBonus, mentionsAnswer\)/);
  });
  it('duplicate names, bad weights and no rewards are errors', async () => {
    await expect(RewardPool.create(['format', 'format=2'])).rejects.toThrow(/two rewards are named 'format'/);
    await expect(RewardPool.create([{ kind: 'builtin', name: 'format', weight: NaN }])).rejects.toThrow(/weight/);
    await expect(RewardPool.create([])).rejects.toThrow(/no rewards/);
    await expect(RewardPool.create(['overlong'])).rejects.toThrow(/maxLength/);
  });
});
