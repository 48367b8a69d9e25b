// `hayate eval`: accuracy, mean@k, pass@k and maj@k of a model on a GSM8K-style (or field-mapped) JSONL
// file, each with a bootstrap interval; with --adapter, base vs base + adapter on the same problems and
// seeds, with a paired comparison and a one-line verdict.
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadAdapter } from '../adapter.js';
import { loadDataset } from '../data/dataset.js';
import { formatIssue } from '../data/errors.js';
import { HayateError } from '../errors.js';
import type { BootstrapInterval } from '../eval/bootstrap.js';
import { compareEvaluations, formatLevel, formatPoints, formatPValue, formatVerdict, type EvalComparison, type PairedMetric } from '../eval/compare.js';
import { evaluate, type EvalResult, type EvalSummary } from '../eval/evaluate.js';
import { writeJsonlAtomic } from '../eval/records.js';
import { ProgressLine } from '../metrics/progress.js';
import { Model } from '../model.js';
import { interruptSignal, reportAndExit } from './errors.js';
import { floatOption, intOption } from './parse.js';

interface EvalCliOptions {
  data: string;
  format: string;
  promptField: string;
  answerField: string;
  skipInvalid?: boolean;
  limit?: number;
  subsetSeed: number;
  n: number;
  k?: number[];
  temperature?: number;
  topK: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  chat?: boolean;
  system?: string;
  instruction: string | false;
  stopAtBoxed: boolean;
  out?: string;
  adapter?: string;
  compare: boolean;
  bootstrap: number;
  backend: string;
  threads: number;
  weights: 'auto' | 'bf16' | 'f32';
  maxBatch: number;
  batchSize: number;
  json?: boolean;
}

function kList(value: string): number[] {
  const ks = value.split(',').map((s) => Number(s.trim()));
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new InvalidArgumentError('--k must be positive integers, comma-separated (e.g. 1,4,8)');
  return ks;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** " ± 1.6 [24.1, 30.5]": bootstrap standard error and interval, in points. */
function ci(i: BootstrapInterval | undefined): string {
  return i ? ` ± ${(100 * i.se).toFixed(1)} [${(100 * i.lo).toFixed(1)}, ${(100 * i.hi).toFixed(1)}]` : '';
}

function table(rows: readonly (readonly string[])[], header?: readonly string[]): string[] {
  const width = Math.max(14, ...rows.flatMap((r) => r.slice(1).map((c) => c.length + 2)));
  const lines: string[] = [];
  if (header) lines.push(`  ${''.padEnd(18)} ${header.map((h) => h.padEnd(width)).join('')}`.trimEnd());
  for (const [name, ...cells] of rows) lines.push(`  ${name.padEnd(18)} ${cells.map((c) => c.padEnd(width)).join('')}`.trimEnd());
  return lines;
}

/**
 * The summary table printed by `hayate eval`: one column per evaluated variant (the base model, and the
 * model with an adapter when --adapter is given), all on the same problems and seeds. Each metric shows
 * its bootstrap standard error (±, points) and interval ([lo, hi]).
 */
export function formatSummary(columns: readonly (readonly [string, EvalSummary])[], modelLabel?: string): string {
  const first = columns[0][1];
  const rows: [string, ...string[]][] = [];
  const row = (name: string, f: (s: EvalSummary) => string) => rows.push([name, ...columns.map(([, s]) => f(s))]);
  row('accuracy', (s) => `${pct(s.accuracy)} (${Math.round(s.accuracy * s.examples * s.n)}/${s.examples * s.n})${ci(s.intervals?.accuracy)}`);
  if (first.n > 1) for (const k of Object.keys(first.meanAtK)) row(`mean@${k}`, (s) => `${pct(s.meanAtK[k])}${ci(s.intervals?.meanAtK[k])}`);
  for (const k of Object.keys(first.passAtK)) row(`pass@${k}`, (s) => `${pct(s.passAtK[k])}${ci(s.intervals?.passAtK[k])}`);
  if (first.n > 1) for (const k of Object.keys(first.majAtK)) row(`maj@${k}`, (s) => `${pct(s.majAtK[k])}${ci(s.intervals?.majAtK[k])}`);
  row('boxed answers', (s) => pct(s.boxedRate));
  row('any number found', (s) => pct(s.extractedRate));
  row('cut at max tokens', (s) => pct(s.truncatedRate));
  row('mean tokens', (s) => s.meanCompletionTokens.toFixed(1));
  row('time', (s) => `${s.seconds.toFixed(1)} s`);
  row('tokens/s', (s) => s.tokensPerSecond.toFixed(1));
  const subset = first.subsetSeed !== null ? ` (random subset, seed ${first.subsetSeed})` : '';
  const head = `${modelLabel ? `${modelLabel}: ` : ''}${first.examples} of ${first.datasetSize} problems${subset}, n=${first.n}, temperature ${first.temperature}, up to ${first.maxNewTokens} new tokens, seed ${first.seed}`;
  const lines = [head, ...table(rows, columns.length > 1 ? columns.map(([label]) => label) : undefined)];
  const b = first.intervals;
  if (b) lines.push(`  ± bootstrap standard error, [${formatLevel(b.level)} interval], in points: percentile bootstrap over problems, ${b.resamples} resamples, seed ${b.seed}`);
  return lines.join('\n');
}

/**
 * The paired comparison printed by `hayate eval --adapter`: per metric, the difference trained - base with
 * its paired bootstrap standard error and interval; McNemar's exact test on first-sample correctness; the
 * verdict.
 */
export function formatComparison(c: EvalComparison, names: { base: string; trained: string }): string {
  const cell = (m: PairedMetric) => {
    const d = m.difference;
    return `${formatPoints(d.estimate)} pts ± ${(100 * d.se).toFixed(1)} [${formatPoints(d.lo)}, ${formatPoints(d.hi)}]`;
  };
  const rows: [string, string][] = [[c.n > 1 ? `accuracy (mean@${c.n})` : 'accuracy', cell(c.accuracy)]];
  if (c.n > 1) {
    for (const [k, m] of Object.entries(c.meanAtK)) if (Number(k) !== c.n) rows.push([`mean@${k}`, cell(m)]);
    for (const [k, m] of Object.entries(c.passAtK)) rows.push([`pass@${k}`, cell(m)]);
    for (const [k, m] of Object.entries(c.majAtK)) rows.push([`maj@${k}`, cell(m)]);
  }
  const mc = c.firstSample.mcnemar;
  const what = c.firstSample.decoding === 'greedy' ? 'greedy answer' : 'first sample';
  return [
    `${names.trained} - ${names.base}, paired over the same ${c.problems} problems (${formatLevel(c.level)} paired bootstrap interval, ${c.resamples} resamples, seed ${c.seed}):`,
    ...table(rows),
    `  McNemar exact test on the ${what} of each problem: right only with ${names.trained} ${mc.trainedOnly}, only with ${names.base} ${mc.baseOnly} ` +
      `(both ${mc.both}, neither ${mc.neither}), ${formatPValue(mc.pValue)}`,
    formatVerdict(c, names),
  ].join('\n');
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('evaluate a model on a test set: accuracy, mean@k, pass@k, maj@k with bootstrap intervals (GSM8K format by default); with --adapter, base vs adapter with a paired significance test')
    .argument('<model>', 'model directory (Hugging Face layout)')
    .requiredOption('--data <jsonl>', 'test data: gsm8k:test (the bundled GSM8K test split), a GSM8K JSONL ({question, answer ending in "#### N"}) or any JSONL with --format jsonl')
    .option('--format <fmt>', 'gsm8k or jsonl (fields chosen by --prompt-field / --answer-field)', 'gsm8k')
    .option('--prompt-field <name>', 'jsonl: field holding the question (dotted paths allowed)', 'prompt')
    .option('--answer-field <name>', 'jsonl: field holding the answer (a number, or text ending in "#### N")', 'answer')
    .option('--skip-invalid', 'skip lines that do not parse (reported) instead of failing')
    .option('--limit <n>', 'evaluate a seeded random subset of n problems', intOption('--limit', 1))
    .option('--subset-seed <s>', 'seed of the random subset', intOption('--subset-seed', 0), 0)
    .option('-n, --n <n>', 'samples per problem', intOption('--n', 1, 65536), 1)
    .option('--k <list>', 'k values for mean@k / pass@k / maj@k, comma-separated, each <= n (default: 1 and n)', kList)
    .option('-t, --temperature <t>', 'sampling temperature, 0 = greedy (default: 0 for n=1, else 1.0)', floatOption('--temperature', 0))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', intOption('--top-k', 0), 0)
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', floatOption('--top-p', 0, 1), 1.0)
    .option('-m, --max-new-tokens <n>', 'maximum new tokens per sample', intOption('--max-new-tokens', 1), 512)
    .option('-s, --seed <seed>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--chat', "send prompts as a user message through the model's chat template")
    .option('--system <text>', 'system message (with --chat)')
    .option('--instruction <text>', 'instruction appended to each question', 'Please reason step by step, and put your final answer within \\boxed{}.')
    .option('--no-instruction', 'append no instruction')
    .option('--no-stop-at-boxed', 'generate up to EOS or --max-new-tokens even after a complete \\boxed{} answer')
    .option('-o, --out <jsonl>', 'write one JSON line per sample (question, completion, extracted answer, correct...)')
    .option(
      '--adapter <dir>',
      'evaluate the base model and base + this LoRA adapter (PEFT format) on the same problems and sampling seeds, side by side, ' +
        "with a paired comparison: paired bootstrap intervals of each difference, McNemar's exact test on the greedy (or first-sample) answers, and a verdict",
    )
    .option('--no-compare', 'with --adapter: evaluate only base + adapter (no base run, no comparison)')
    .option('--bootstrap <n>', 'bootstrap resamples over problems for the 95% intervals (seeded by --seed)', intOption('--bootstrap', 1, 1_000_000), 1000)
    .option('--backend <kind>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0 = all)', intOption('--threads', 0), 0)
    .addOption(new Option('--weights <dtype>', 'CPU: base weights in bf16 or f32; auto keeps the checkpoint\'s bf16').choices(['auto', 'bf16', 'f32']).default('auto'))
    .option('--max-batch <n>', 'sequences decoded at once', intOption('--max-batch', 1), 64)
    .option('--batch-size <n>', 'problems per generation round', intOption('--batch-size', 1), 64)
    .option('--json', 'print the summary as one JSON object instead of a table')
    .action(async (dir: string, opts: EvalCliOptions) => {
      try {
        if (opts.backend !== 'cpu' && opts.backend !== 'cuda') throw new HayateError('ERR_INVALID_ARGUMENT', `--backend must be cpu or cuda, not '${opts.backend}'`);
        if (opts.format !== 'gsm8k' && opts.format !== 'jsonl') throw new HayateError('ERR_INVALID_ARGUMENT', `--format must be gsm8k or jsonl, not '${opts.format}'`);
        if (opts.k && opts.k.some((k) => k > opts.n)) throw new HayateError('ERR_INVALID_ARGUMENT', `--k values must be <= --n (${opts.n})`);
        if (opts.system !== undefined && !opts.chat) throw new HayateError('ERR_INVALID_ARGUMENT', '--system needs --chat');
        const data = await loadDataset(opts.data, {
          format: opts.format,
          promptField: opts.promptField,
          answerField: opts.answerField,
          onInvalid: opts.skipInvalid ? 'skip' : 'error',
          instruction: opts.instruction === false ? null : opts.instruction,
          chat: opts.chat ?? false,
          systemPrompt: opts.system,
        });
        if (data.skipped.length > 0) {
          process.stderr.write(`hayate: warning: skipped ${data.skipped.length} invalid line${data.skipped.length > 1 ? 's' : ''} of ${opts.data} (first: ${formatIssue(data.skipped[0])})\n`);
        }
        const signal = interruptSignal();
        const model = await Model.load(dir, { backend: opts.backend, threads: opts.threads, weights: opts.weights, signal });
        try {
          if (opts.adapter !== undefined) await loadAdapter(model, opts.adapter);
          const total = Math.min(opts.limit ?? data.examples.length, data.examples.length);
          // With an adapter: the base model (adapters off) then the adapter, on the same problems and seeds
          // (one loaded model, LoRA switched per call); --no-compare: the adapter only.
          const compare = opts.adapter !== undefined && opts.compare;
          const variants: [string, boolean | undefined][] = opts.adapter === undefined ? [['eval', undefined]] : compare ? [['base', false], ['adapter', true]] : [['adapter', true]];
          const results: [string, EvalResult][] = [];
          const allRecords: Record<string, unknown>[] = [];
          for (const [label, lora] of variants) {
            const progress = new ProgressLine({ label, total });
            const result = await evaluate(model, data.examples, {
              n: opts.n,
              k: opts.k,
              temperature: opts.temperature,
              topK: opts.topK,
              topP: opts.topP,
              maxNewTokens: opts.maxNewTokens,
              seed: opts.seed,
              limit: opts.limit,
              subsetSeed: opts.subsetSeed,
              stopAtBoxed: opts.stopAtBoxed,
              batchSize: opts.batchSize,
              maxBatch: opts.maxBatch,
              lora,
              bootstrap: { resamples: opts.bootstrap, seed: opts.seed },
              signal,
              onProgress: (p) => progress.update(p.done, { acc: p.accuracy, 'tok/s': p.seconds > 0 ? p.generatedTokens / p.seconds : 0 }),
            });
            progress.finish();
            results.push([label, result]);
            for (const r of result.records) allRecords.push(compare ? { model: label, ...r } : { ...r });
          }
          const comparison = compare ? compareEvaluations(results[0][1], results[1][1], { resamples: opts.bootstrap, seed: opts.seed }) : undefined;
          const names = { base: 'base', trained: 'adapter' };
          if (opts.out) writeJsonlAtomic(opts.out, allRecords);
          const adapterDir = opts.adapter !== undefined ? { adapterDir: opts.adapter } : {};
          if (opts.json) {
            const body = comparison ? { base: results[0][1].summary, adapter: results[1][1].summary, comparison, verdict: formatVerdict(comparison, names) } : results[0][1].summary;
            process.stdout.write(`${JSON.stringify({ model: dir, ...adapterDir, data: opts.data, ...body })}\n`);
          } else {
            const columns = results.map(([label, r]) => [label, r.summary] as const);
            process.stdout.write(`${formatSummary(columns, opts.adapter !== undefined ? `${dir} + ${opts.adapter}` : dir)}\n`);
            if (comparison) process.stdout.write(`\n${formatComparison(comparison, names)}\n`);
          }
          if (opts.out) process.stderr.write(`hayate: wrote ${allRecords.length} samples to ${opts.out}\n`);
        } finally {
          await model.dispose();
        }
      } catch (err) {
        reportAndExit(err);
      }
    });
}
