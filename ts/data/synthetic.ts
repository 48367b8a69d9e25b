// Synthetic arithmetic word problems with verifiable answers, for the demo and tests. Each problem is a
// short story about one person and one kind of item: a starting amount, then `level` steps (buy, give
// away, double, share out, buy packs...), then "How many ... now?". Records have GSM8K's shape (question,
// answer = worked solution + "#### N"), so the same loaders, rewards and SFT targets apply.
//
// Train and test never overlap: a problem's split is decided by a hash of its question text, so any
// train set and any test set (whatever their seeds or sizes) are disjoint; within a set questions are unique.
import { HayateError } from '../errors.js';
import { examplesFromRecords, type Example } from './dataset.js';
import type { PromptOptions } from './prompt.js';
import { hashString, Rng } from './random.js';

export const MAX_SYNTHETIC_LEVEL = 5;

export type SyntheticSplit = 'train' | 'test' | 'all';

export interface SyntheticOptions {
  /** Number of problems. */
  count: number;
  seed?: number;
  /** Difficulty 1..5 (1: one addition or subtraction on numbers up to 20; n: n steps, bigger numbers); an array mixes levels. Default 1. */
  level?: number | number[];
  /** Which part of the problem space to draw from (default 'all'). */
  split?: SyntheticSplit;
  /** Share of the problem space that belongs to the test split (default 0.2). */
  testFraction?: number;
  /** Write GSM8K's calculator annotations ("12 + 5 = <<12+5=17>>17"). Default false. */
  calculatorAnnotations?: boolean;
  /**
   * Give up (with an error) after this many draws in a row that yield no new problem of the split: the
   * problem space is nearly exhausted. Default 20000.
   */
  maxStaleDraws?: number;
}

export type SyntheticOp = '+' | '-' | '*' | '/';

export interface SyntheticStep {
  op: SyntheticOp;
  /** The number applied (for a "packs" step, the total k * m added). */
  operand: number;
  before: number;
  after: number;
}

export interface SyntheticProblem {
  question: string;
  /** Worked solution ending in "#### N", in GSM8K's style. */
  answer: string;
  level: number;
  start: number;
  steps: SyntheticStep[];
  /** The final amount (the ground truth). */
  result: number;
}

interface LevelSpec {
  steps: number;
  maxStart: number;
  maxOperand: number;
  maxFactor: number;
  ops: readonly ('add' | 'sub' | 'mul' | 'div' | 'packs')[];
  cap: number;
}

const LEVELS: readonly LevelSpec[] = [
  { steps: 1, maxStart: 20, maxOperand: 10, maxFactor: 2, ops: ['add', 'sub'], cap: 40 },
  { steps: 2, maxStart: 50, maxOperand: 20, maxFactor: 3, ops: ['add', 'sub', 'mul'], cap: 200 },
  { steps: 3, maxStart: 100, maxOperand: 40, maxFactor: 4, ops: ['add', 'sub', 'mul', 'div'], cap: 500 },
  { steps: 4, maxStart: 100, maxOperand: 50, maxFactor: 4, ops: ['add', 'sub', 'mul', 'div', 'packs'], cap: 1000 },
  { steps: 5, maxStart: 200, maxOperand: 80, maxFactor: 5, ops: ['add', 'sub', 'mul', 'div', 'packs'], cap: 2000 },
];

const PEOPLE: readonly [string, 'she' | 'he'][] = [
  ['Mia', 'she'], ['Noah', 'he'], ['Emma', 'she'], ['Liam', 'he'], ['Ava', 'she'], ['Lucas', 'he'], ['Sofia', 'she'],
  ['Ethan', 'he'], ['Zoe', 'she'], ['Omar', 'he'], ['Lena', 'she'], ['Ravi', 'he'], ['Hana', 'she'], ['Tom', 'he'],
  ['Nora', 'she'], ['Ben', 'he'], ['Ines', 'she'], ['Kofi', 'he'], ['Yuki', 'she'], ['Diego', 'he'],
];

const ITEMS: readonly string[] = ['apples', 'marbles', 'stickers', 'books', 'cookies', 'pencils', 'coins', 'cards', 'shells', 'stamps', 'eggs', 'beads'];

const FACTOR_WORDS: Record<number, string> = { 2: 'doubles', 3: 'triples', 4: 'quadruples', 5: 'becomes five times as large' };
const FACTOR_GERUNDS: Record<number, string> = { 2: 'Doubling', 3: 'Tripling', 4: 'Quadrupling', 5: 'Multiplying by 5' };

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

interface Story {
  name: string;
  pronoun: 'she' | 'he';
  items: string;
  annotate: boolean;
}

function calc(story: Story, a: number, op: SyntheticOp, b: number, c: number): string {
  return story.annotate ? `${a} ${op} ${b} = <<${a}${op}${b}=${c}>>${c}` : `${a} ${op} ${b} = ${c}`;
}

type StepText = { step: SyntheticStep; sentence: string; solution: string };

/** One step applied to `value`, or null when the op does not fit (e.g. nothing divides evenly). */
function makeStep(rng: Rng, kind: LevelSpec['ops'][number], value: number, spec: LevelSpec, story: Story, first: boolean): StepText | null {
  const who = first ? story.name : story.pronoun;
  const lead = first ? '' : 'Then ';
  const { items, pronoun } = story;
  const possessive = pronoun === 'she' ? 'her' : 'his';
  switch (kind) {
    case 'add': {
      const n = rng.int(1, spec.maxOperand);
      if (value + n > spec.cap) return null;
      const after = value + n;
      const phrasing = rng.int(0, 2);
      const sentence = [`${who} buys ${n} more ${items}.`, `${who} finds ${n} more ${items}.`, `a friend gives ${first ? story.name : pronoun === 'she' ? 'her' : 'him'} ${n} ${items}.`][phrasing];
      const verb = ['buying', 'finding', 'getting'][phrasing];
      return { step: { op: '+', operand: n, before: value, after }, sentence: capitalize(lead + sentence), solution: `After ${verb} ${n} more, ${pronoun} has ${calc(story, value, '+', n, after)} ${items}.` };
    }
    case 'sub': {
      if (value < 2) return null;
      const n = rng.int(1, Math.min(spec.maxOperand, value - 1));
      const after = value - n;
      const phrasing = rng.int(0, 2);
      const sentence = [`${who} gives ${n} ${items} to a friend.`, `${who} loses ${n} ${items}.`, `${who} sells ${n} of ${possessive} ${items}.`][phrasing];
      const verb = ['giving away', 'losing', 'selling'][phrasing];
      return { step: { op: '-', operand: n, before: value, after }, sentence: capitalize(lead + sentence), solution: `After ${verb} ${n}, ${pronoun} has ${calc(story, value, '-', n, after)} ${items}.` };
    }
    case 'mul': {
      const k = rng.int(2, spec.maxFactor);
      if (value * k > spec.cap) return null;
      const after = value * k;
      const owner = first ? story.name : pronoun;
      return {
        step: { op: '*', operand: k, before: value, after },
        sentence: capitalize(`${lead}the number of ${items} ${owner} has ${FACTOR_WORDS[k]}.`),
        solution: `${FACTOR_GERUNDS[k]} gives ${calc(story, value, '*', k, after)} ${items}.`,
      };
    }
    case 'div': {
      const divisors: number[] = [];
      for (let k = 2; k <= Math.max(2, spec.maxFactor + 1); k++) if (value % k === 0 && value / k >= 1) divisors.push(k);
      if (divisors.length === 0 || value < 4) return null;
      const k = rng.pick(divisors);
      const after = value / k;
      return {
        step: { op: '/', operand: k, before: value, after },
        sentence: capitalize(`${lead}${who} shares ${possessive} ${items} equally among ${k} bags and keeps one bag.`),
        solution: `One bag holds ${calc(story, value, '/', k, after)} ${items}.`,
      };
    }
    case 'packs': {
      const packs = rng.int(2, spec.maxFactor + 1);
      const per = rng.int(2, 12);
      const added = packs * per;
      if (value + added > spec.cap) return null;
      const after = value + added;
      return {
        step: { op: '+', operand: added, before: value, after },
        sentence: capitalize(`${lead}${who} buys ${packs} packs with ${per} ${items} in each pack.`),
        solution: `The packs hold ${calc(story, packs, '*', per, added)} ${items}, so ${pronoun} has ${calc(story, value, '+', added, after)} ${items}.`,
      };
    }
  }
}

function checkLevel(level: number): LevelSpec {
  if (!Number.isInteger(level) || level < 1 || level > MAX_SYNTHETIC_LEVEL) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `synthetic difficulty level must be an integer in [1, ${MAX_SYNTHETIC_LEVEL}], got ${level}`);
  }
  return LEVELS[level - 1];
}

/** One problem at `level` drawn from `rng`. */
export function generateProblem(rng: Rng, level: number, options: { calculatorAnnotations?: boolean } = {}): SyntheticProblem {
  const spec = checkLevel(level);
  const [name, pronoun] = rng.pick(PEOPLE);
  const story: Story = { name, pronoun, items: rng.pick(ITEMS), annotate: options.calculatorAnnotations ?? false };
  const start = rng.int(2, spec.maxStart);
  let value = start;
  const texts: StepText[] = [];
  while (texts.length < spec.steps) {
    let made: StepText | null = null;
    const first = texts.length === 0;
    for (let attempt = 0; attempt < 20 && !made; attempt++) made = makeStep(rng, rng.pick(spec.ops), value, spec, story, first);
    // Rarely nothing fits: subtracting works from any value >= 2, adding (uncapped) from 1.
    made ??= makeStep(rng, 'sub', value, spec, story, first) ?? makeStep(rng, 'add', value, { ...spec, cap: Infinity }, story, first);
    if (!made) throw new HayateError('ERR_INTERNAL', 'synthetic generator found no step');
    texts.push(made);
    value = made.step.after;
  }
  const question = `${name} has ${start} ${story.items}. ${texts.map((t) => t.sentence).join(' ')} How many ${story.items} does ${name} have now?`;
  const solution = [`${name} starts with ${start} ${story.items}.`, ...texts.map((t) => t.solution)].join('\n');
  return { question, answer: `${solution}\n#### ${value}`, level, start, steps: texts.map((t) => t.step), result: value };
}

/** Which split a question belongs to, from a hash of its text. */
export function syntheticSplitOf(question: string, testFraction = 0.2): 'train' | 'test' {
  return hashString(question) % 10_000 < Math.round(testFraction * 10_000) ? 'test' : 'train';
}

/** `count` distinct problems of the requested split, reproducible from the seed. */
export function generateSynthetic(options: SyntheticOptions): SyntheticProblem[] {
  const { count } = options;
  if (!Number.isInteger(count) || count < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `synthetic problem count must be a positive integer, got ${count}`);
  const levels = Array.isArray(options.level) ? options.level : [options.level ?? 1];
  if (levels.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'no synthetic difficulty levels given');
  levels.forEach(checkLevel);
  const split = options.split ?? 'all';
  const testFraction = options.testFraction ?? 0.2;
  if (!(testFraction > 0 && testFraction < 1)) throw new HayateError('ERR_INVALID_ARGUMENT', `testFraction must be in (0, 1), got ${testFraction}`);
  const rng = new Rng(options.seed ?? 0);
  const seen = new Set<string>();
  const out: SyntheticProblem[] = [];
  const maxStale = options.maxStaleDraws ?? 20_000;
  for (let stale = 0; out.length < count; ) {
    if (stale >= maxStale) {
      throw new HayateError('ERR_INVALID_ARGUMENT', `could only generate ${out.length} distinct ${split} problems at level ${levels.join(',')} (asked for ${count}); use a higher level or fewer problems`);
    }
    const p = generateProblem(rng, rng.pick(levels), options);
    if (seen.has(p.question) || (split !== 'all' && syntheticSplitOf(p.question, testFraction) !== split)) {
      stale++;
      continue;
    }
    stale = 0;
    seen.add(p.question);
    out.push(p);
  }
  return out;
}

/** Synthetic problems as dataset Examples (prompts built exactly as for GSM8K). */
export function syntheticExamples(options: SyntheticOptions & PromptOptions): Example[] {
  const problems = generateSynthetic(options);
  return examplesFromRecords(
    problems.map((p) => ({ question: p.question, answer: p.answer, level: p.level })),
    { ...options, format: 'gsm8k' },
  );
}
