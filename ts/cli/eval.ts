// `hayate eval`: accuracy, pass@k and maj@k of a model on a GSM8K-style (or field-mapped) JSONL file.
import { Command, InvalidArgumentError } from 'commander';
import { loadAdapter } from '../adapter.js';
import { loadDataset } from '../data/dataset.js';
import { formatIssue } from '../data/errors.js';
import { HayateError } from '../errors.js';
import { evaluate, type EvalSummary } from '../eval/evaluate.js';
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
  backend: string;
  threads: number;
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

/**
 * The summary table printed by `hayate eval`: one column per evaluated variant (the base model, and the
 * model with an adapter when --adapter is given), all on the same problems and seeds.
 */
export function formatSummary(columns: readonly (readonly [string, EvalSummary])[], modelLabel?: string): string {
  const first = columns[0][1];
  const rows: [string, ...string[]][] = [];
  const row = (name: string, f: (s: EvalSummary) => string) => rows.push([name, ...columns.map(([, s]) => f(s))]);
  row('accuracy', (s) => `${pct(s.accuracy)} (${Math.round(s.accuracy * s.examples * s.n)}/${s.examples * s.n})`);
  for (const k of Object.keys(first.passAtK)) row(`pass@${k}`, (s) => pct(s.passAtK[k]));
  if (first.n > 1) for (const k of Object.keys(first.majAtK)) row(`maj@${k}`, (s) => pct(s.majAtK[k]));
  row('boxed answers', (s) => pct(s.boxedRate));
  row('any number found', (s) => pct(s.extractedRate));
  row('cut at max tokens', (s) => pct(s.truncatedRate));
  row('mean tokens', (s) => s.meanCompletionTokens.toFixed(1));
  row('time', (s) => `${s.seconds.toFixed(1)} s`);
  row('tokens/s', (s) => s.tokensPerSecond.toFixed(1));
  const subset = first.subsetSeed !== null ? ` (random subset, seed ${first.subsetSeed})` : '';
  const head = `${modelLabel ? `${modelLabel}: ` : ''}${first.examples} of ${first.datasetSize} problems${subset}, n=${first.n}, temperature ${first.temperature}, up to ${first.maxNewTokens} new tokens, seed ${first.seed}`;
  const width = Math.max(14, ...rows.flatMap((r) => r.slice(1).map((c) => c.length + 2)));
  const lines = [head];
  if (columns.length > 1) lines.push(`  ${''.padEnd(18)} ${columns.map(([label]) => label.padEnd(width)).join('')}`.trimEnd());
  for (const [name, ...cells] of rows) lines.push(`  ${name.padEnd(18)} ${cells.map((c) => c.padEnd(width)).join('')}`.trimEnd());
  return lines.join('\n');
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('evaluate a model on a test set: accuracy, pass@k, maj@k (GSM8K format by default)')
    .argument('<model>', 'model directory (Hugging Face layout)')
    .requiredOption('--data <jsonl>', 'test data: gsm8k:test (the bundled GSM8K test split), a GSM8K JSONL ({question, answer ending in "#### N"}) or any JSONL with --format jsonl')
    .option('--format <fmt>', 'gsm8k or jsonl (fields chosen by --prompt-field / --answer-field)', 'gsm8k')
    .option('--prompt-field <name>', 'jsonl: field holding the question (dotted paths allowed)', 'prompt')
    .option('--answer-field <name>', 'jsonl: field holding the answer (a number, or text ending in "#### N")', 'answer')
    .option('--skip-invalid', 'skip lines that do not parse (reported) instead of failing')
    .option('--limit <n>', 'evaluate a seeded random subset of n problems', intOption('--limit', 1))
    .option('--subset-seed <s>', 'seed of the random subset', intOption('--subset-seed', 0), 0)
    .option('-n, --n <n>', 'samples per problem', intOption('--n', 1, 65536), 1)
    .option('--k <list>', 'k values for pass@k / maj@k, comma-separated, each <= n (default: 1 and n)', kList)
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
    .option('--adapter <dir>', 'also evaluate with this LoRA adapter (PEFT format), side by side with the base model')
    .option('--backend <kind>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0 = all)', intOption('--threads', 0), 0)
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
        const model = await Model.load(dir, { backend: opts.backend, threads: opts.threads, signal });
        try {
          if (opts.adapter !== undefined) await loadAdapter(model, opts.adapter);
          const total = Math.min(opts.limit ?? data.examples.length, data.examples.length);
          // With an adapter: the base model (adapters off) then the adapter, on the same problems and seeds.
          const variants: [string, boolean | undefined][] = opts.adapter !== undefined ? [['base', false], ['adapter', true]] : [['eval', undefined]];
          const columns: [string, EvalSummary][] = [];
          const allRecords: Record<string, unknown>[] = [];
          for (const [label, lora] of variants) {
            const progress = new ProgressLine({ label, total });
            const { summary, records } = await evaluate(model, data.examples, {
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
              signal,
              onProgress: (p) => progress.update(p.done, { acc: p.accuracy, 'tok/s': p.seconds > 0 ? p.generatedTokens / p.seconds : 0 }),
            });
            progress.finish();
            columns.push([label, summary]);
            for (const r of records) allRecords.push(opts.adapter !== undefined ? { model: label, ...r } : { ...r });
          }
          if (opts.out) writeJsonlAtomic(opts.out, allRecords);
          if (opts.json) {
            const body = opts.adapter !== undefined ? { base: columns[0][1], adapter: columns[1][1] } : columns[0][1];
            process.stdout.write(`${JSON.stringify({ model: dir, ...(opts.adapter !== undefined ? { adapterDir: opts.adapter } : {}), data: opts.data, ...body })}\n`);
          } else process.stdout.write(`${formatSummary(columns, opts.adapter !== undefined ? `${dir} + ${opts.adapter}` : dir)}\n`);
          if (opts.out) process.stderr.write(`hayate: wrote ${allRecords.length} samples to ${opts.out}\n`);
        } finally {
          await model.dispose();
        }
      } catch (err) {
        reportAndExit(err);
      }
    });
}
