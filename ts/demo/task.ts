// The demo's task: synthetic arithmetic word problems (data/synthetic.ts) in a compact format a model
// trained from scratch can learn in minutes.
//   prompt      the question, then a newline
//   completion  the calculations, then the answer in \boxed{} (so the built-in correctness reward applies):
//               "20 * 2 = 40, 40 - 17 = 23. \boxed{23}"
//   drills      each calculation on its own ("20 * 2 =" -> " 40"): short sequences that teach the arithmetic
//               facts far more cheaply than whole word problems
// Training problems come from the train split and evaluation problems from the test split, which never
// share a question.
import type { Example } from '../data/dataset.js';
import { generateSynthetic, type SyntheticProblem } from '../data/synthetic.js';
import type { SftTextExample } from '../train/sft-examples.js';

export function demoPrompt(p: SyntheticProblem): string {
  return `${p.question}\n`;
}

/** The worked completion the SFT phase teaches. */
export function demoCompletion(p: SyntheticProblem): string {
  const calcs = p.steps.map((s) => `${s.before} ${s.op} ${s.operand} = ${s.after}`).join(', ');
  return `${calcs}. \\boxed{${p.result}}`;
}

/** The problem as a dataset Example (what GrpoTrainer and evaluate() take). */
export function demoExample(p: SyntheticProblem, index: number): Example {
  return { index, prompt: demoPrompt(p), question: p.question, answer: String(p.result), solution: demoCompletion(p), raw: { question: p.question, answer: p.answer, level: p.level } };
}

/** Calculation drills of the problems' steps, one per step. */
export function demoDrills(problems: readonly SyntheticProblem[]): SftTextExample[] {
  return problems.flatMap((p) => p.steps.map((s) => ({ prompt: `${s.before} ${s.op} ${s.operand} =`, completion: ` ${s.after}` })));
}

export interface DemoData {
  train: SyntheticProblem[];
  test: SyntheticProblem[];
  /** SFT data: every training problem with its worked completion, plus calculation drills. */
  sft: SftTextExample[];
  /** GRPO prompts (the training problems, answers only). */
  grpo: Example[];
  /** Held-out evaluation problems. */
  eval: Example[];
}

export function buildDemoData(options: { seed: number; level: number | number[]; trainProblems: number; evalProblems: number; drillsPerProblem: number }): DemoData {
  const train = generateSynthetic({ count: options.trainProblems, level: options.level, seed: options.seed, split: 'train' });
  const test = generateSynthetic({ count: options.evalProblems, level: options.level, seed: options.seed + 1_000_003, split: 'test' });
  const sft: SftTextExample[] = train.map((p) => ({ prompt: demoPrompt(p), completion: demoCompletion(p) }));
  const drillCount = Math.round(options.trainProblems * options.drillsPerProblem);
  if (drillCount > 0) {
    // Drills from other training-split problems, so they cover more arithmetic than the word problems do.
    const stepsPerProblem = Math.min(...train.map((p) => p.steps.length));
    const extra = generateSynthetic({ count: Math.ceil(drillCount / stepsPerProblem), level: options.level, seed: options.seed + 2_000_003, split: 'train' });
    sft.push(...demoDrills(extra).slice(0, drillCount));
  }
  return { train, test, sft, grpo: train.map(demoExample), eval: test.map(demoExample) };
}
