// Synthetic arithmetic problems: answers verified by recomputation, GSM8K shape, disjoint splits.
import { describe, expect, it } from 'vitest';
import { examplesFromRecords } from '../ts/data/dataset.js';
import { parseGsm8kAnswer, toBoxedSolution } from '../ts/data/gsm8k.js';
import { generateSynthetic, MAX_SYNTHETIC_LEVEL, syntheticExamples, syntheticSplitOf, type SyntheticProblem } from '../ts/data/synthetic.js';
import { isCorrect } from '../ts/rewards/extract.js';

function apply(op: string, a: number, b: number): number {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return a / b;
  }
  throw new Error(`bad op ${op}`);
}

/** Checks every "a op b = c" of the worked solution and the chain of steps from the start to the answer. */
function verify(p: SyntheticProblem): void {
  const equations = [...p.answer.matchAll(/(\d+) ([-+*/]) (\d+) = (?:<<(\d+)([-+*/])(\d+)=(\d+)>>)?(\d+)/g)];
  expect(equations.length).toBeGreaterThanOrEqual(p.steps.length);
  for (const m of equations) {
    const [a, op, b, c] = [Number(m[1]), m[2], Number(m[3]), Number(m[8])];
    expect(apply(op, a, b)).toBe(c);
    if (m[4] !== undefined) expect([Number(m[4]), m[5], Number(m[6]), Number(m[7])]).toEqual([a, op, b, c]);
  }
  let v = p.start;
  for (const s of p.steps) {
    expect(s.before).toBe(v);
    v = apply(s.op, v, s.operand);
    expect(Number.isInteger(v) && v >= 0).toBe(true);
    expect(s.after).toBe(v);
  }
  expect(p.result).toBe(v);
  expect(parseGsm8kAnswer(p.answer)?.answer).toBe(String(v));
  expect(p.question).toContain(String(p.start));
  expect(p.question).toMatch(/How many \w+ does \w+ have now\?$/);
}

describe('synthetic problems', () => {
  it('every level gives verified answers with the right number of steps', () => {
    for (let level = 1; level <= MAX_SYNTHETIC_LEVEL; level++) {
      const problems = generateSynthetic({ count: 300, seed: level, level, calculatorAnnotations: level % 2 === 0 });
      for (const p of problems) {
        expect(p.level).toBe(level);
        expect(p.steps).toHaveLength(level);
        verify(p);
      }
    }
  });

  it('level 1 is one addition or subtraction on small numbers', () => {
    for (const p of generateSynthetic({ count: 200, seed: 3, level: 1 })) {
      expect(['+', '-']).toContain(p.steps[0].op);
      expect(p.start).toBeLessThanOrEqual(20);
      expect(p.steps[0].operand).toBeLessThanOrEqual(10);
    }
  });

  it('is reproducible from the seed', () => {
    const a = generateSynthetic({ count: 50, seed: 11, level: [1, 2, 3] });
    expect(generateSynthetic({ count: 50, seed: 11, level: [1, 2, 3] })).toEqual(a);
    expect(generateSynthetic({ count: 50, seed: 12, level: [1, 2, 3] })).not.toEqual(a);
    expect(new Set(a.map((p) => p.level))).toEqual(new Set([1, 2, 3]));
  });

  it('train and test never overlap, whatever their seeds', () => {
    const train = generateSynthetic({ count: 2000, seed: 1, level: [1, 2], split: 'train' });
    const test = generateSynthetic({ count: 500, seed: 1, level: [1, 2], split: 'test' });
    const test2 = generateSynthetic({ count: 500, seed: 99, level: [1, 2], split: 'test' });
    const trainQ = new Set(train.map((p) => p.question));
    expect(trainQ.size).toBe(2000);
    for (const p of [...test, ...test2]) expect(trainQ.has(p.question)).toBe(false);
    for (const p of train) expect(syntheticSplitOf(p.question)).toBe('train');
    for (const p of test) expect(syntheticSplitOf(p.question)).toBe('test');
  });

  it('uses the GSM8K record shape and loaders', () => {
    const examples = syntheticExamples({ count: 20, seed: 5, level: 2 });
    expect(examples).toHaveLength(20);
    for (const e of examples) {
      expect(e.prompt).toMatch(/\\boxed\{\}\.$/);
      expect(isCorrect(e.raw.answer as string, e.answer)).toBe(true);
      expect(isCorrect(toBoxedSolution(e.raw.answer as string)!, e.answer)).toBe(true);
    }
    expect(examplesFromRecords(generateSynthetic({ count: 3, seed: 1 }).map((p) => ({ question: p.question, answer: p.answer })))).toHaveLength(3);
  });

  it('rejects bad options', () => {
    expect(() => generateSynthetic({ count: 0 })).toThrow(/count/);
    expect(() => generateSynthetic({ count: 1, level: 6 })).toThrow(/level/);
    expect(() => generateSynthetic({ count: 1, level: [] })).toThrow(/levels/);
    expect(() => generateSynthetic({ count: 1, testFraction: 1 })).toThrow(/testFraction/);
    // The problem space running out is detected (here forced: any rejected draw counts).
    expect(() => generateSynthetic({ count: 200, level: 1, split: 'test', maxStaleDraws: 1 })).toThrow(/could only generate \d+ distinct test problems/);
  });
});
