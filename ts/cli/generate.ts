// `hayate generate`: batched generation from the command line.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { HayateError } from '../errors.js';
import { Model, type PromptInput } from '../model.js';
import { interruptSignal, reportAndExit } from './errors.js';
import { collect, floatOption, intOption } from './parse.js';

interface GenerateCliOptions {
  file?: string;
  chat?: boolean;
  n: number;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
  stop: string[];
  ignoreEos?: boolean;
  backend: 'cpu' | 'cuda';
  threads: number;
  weights: 'auto' | 'bf16' | 'f32';
  maxBatch: number;
  format: 'json' | 'text';
}

/** Reads prompts from a JSONL file: each line a JSON string, or {prompt|text}, {messages} or {tokens}. */
export function readPromptFile(path: string, chat: boolean): PromptInput[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const prompts: PromptInput[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new HayateError('ERR_INVALID_ARGUMENT', `${path}:${i + 1}: not valid JSON`);
    }
    const o = v as Record<string, unknown>;
    if (typeof v === 'string') prompts.push(chat ? { messages: [{ role: 'user', content: v }] } : v);
    else if (o && Array.isArray(o.messages)) prompts.push({ messages: o.messages as { role: string; content: string }[] });
    else if (o && Array.isArray(o.tokens)) prompts.push({ tokens: o.tokens as number[] });
    else if (o && (typeof o.prompt === 'string' || typeof o.text === 'string')) {
      const text = (o.prompt ?? o.text) as string;
      prompts.push(chat ? { messages: [{ role: 'user', content: text }] } : text);
    } else throw new HayateError('ERR_INVALID_ARGUMENT', `${path}:${i + 1}: expected a string or an object with "prompt", "messages" or "tokens"`);
  });
  if (prompts.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', `${path}: no prompts`);
  return prompts;
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('generate completions with a model directory (Hugging Face layout)')
    .argument('<model>', 'model directory')
    .argument('[prompts...]', 'prompt texts')
    .option('-f, --file <jsonl>', 'read prompts from a JSONL file (string, {prompt}, {messages} or {tokens} per line)')
    .option('--chat', "wrap text prompts as a user message and apply the model's chat template")
    .option('-n, --n <n>', 'samples per prompt', intOption('--n', 1, 65536), 1)
    .option('-m, --max-new-tokens <n>', 'maximum new tokens per sample', intOption('--max-new-tokens', 1), 128)
    .option('-t, --temperature <t>', 'sampling temperature (0 = greedy)', floatOption('--temperature', 0), 1.0)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', intOption('--top-k', 0), 0)
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', floatOption('--top-p', 0, 1), 1.0)
    .option('--min-p <p>', 'drop tokens below p x the top probability (0 = off)', floatOption('--min-p', 0, 1), 0)
    .option('-s, --seed <seed>', 'base random seed', intOption('--seed', 0), 0)
    .option('--stop <text>', 'stop string (repeatable)', collect, [])
    .option('--ignore-eos', "do not stop at the model's EOS tokens")
    .option('--backend <kind>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0 = all)', intOption('--threads', 0), 0)
    .addOption(new Option('--weights <dtype>', 'CPU: base weights in bf16 or f32; auto keeps the checkpoint\'s bf16').choices(['auto', 'bf16', 'f32']).default('auto'))
    .option('--max-batch <n>', 'sequences decoded at once', intOption('--max-batch', 1), 64)
    .option('--format <fmt>', 'json (one line per prompt) or text', 'text')
    .action(async (dir: string, texts: string[], opts: GenerateCliOptions) => {
      try {
        if (opts.backend !== 'cpu' && opts.backend !== 'cuda') throw new HayateError('ERR_INVALID_ARGUMENT', `--backend must be cpu or cuda, not '${opts.backend}'`);
        if (opts.format !== 'json' && opts.format !== 'text') throw new HayateError('ERR_INVALID_ARGUMENT', `--format must be json or text, not '${opts.format}'`);
        const prompts: PromptInput[] = opts.file
          ? readPromptFile(opts.file, opts.chat ?? false)
          : texts.map((t) => (opts.chat ? { messages: [{ role: 'user', content: t }] } : t));
        if (prompts.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'no prompts: pass prompt texts or --file');
        const signal = interruptSignal();
        const model = await Model.load(dir, { backend: opts.backend, threads: opts.threads, weights: opts.weights, signal });
        const started = performance.now();
        const { results, stats } = await model.generate(prompts, {
          n: opts.n,
          maxNewTokens: opts.maxNewTokens,
          temperature: opts.temperature,
          topK: opts.topK,
          topP: opts.topP,
          minP: opts.minP,
          seed: opts.seed,
          stop: opts.stop,
          ignoreEos: opts.ignoreEos,
          maxBatch: opts.maxBatch,
          signal,
        });
        const seconds = (performance.now() - started) / 1000;
        results.forEach((r, i) => {
          if (opts.format === 'json') {
            process.stdout.write(`${JSON.stringify({ prompt: i, promptTokens: r.promptTokens.length, completions: r.completions })}\n`);
          } else {
            r.completions.forEach((c, j) => {
              process.stdout.write(`--- prompt ${i} sample ${j} (${c.tokens.length} tokens, ${c.finishReason}) ---\n${c.text}\n`);
            });
          }
        });
        process.stderr.write(`hayate: ${stats.generatedTokens} tokens in ${seconds.toFixed(2)} s (${(stats.generatedTokens / seconds).toFixed(1)} tokens/s)\n`);
        await model.dispose();
      } catch (err) {
        reportAndExit(err);
      }
    });
}
