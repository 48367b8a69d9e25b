#!/usr/bin/env node
// Teach the demo's tiny model (trained from scratch here, nothing downloaded) to call the `calculate` tool
// of ./tools.js for arithmetic word problems, and measure held-out accuracy with and without the tool.
//
//   npm run build:ts && node examples/calculator-tool/run.mjs [--out DIR] [--quick] [--seed N] [--threads N]
//
// 1. base     `hayate demo`'s model and SFT recipe: a random-weight 4-layer model, LoRA taught to read the
//             word problems and answer directly ("13 + 7 = 20. \boxed{20}", plus calculation drills).
// 2. Two branches from that adapter, evaluated greedy on the same held-out problems:
//    tool     SFT on tool traces in the plain-text tool format of ts/tools/conversation.ts
//               prompt      plainToolPreamble([calculate]) + "\n\n" + question + "\n"
//               completion  <tool_call>{"name": "calculate", "arguments": {"expression": " 13 + 7"}}</tool_call>
//                           \n<tool_response>\n20\n</tool_response>\n\boxed{20}
//             plus short "answer drills" (the call and the tool's answer as the prompt, "\boxed{20}" as the
//             completion: copying the tool's answer, cheaply); then GrpoTrainer with tools: [calculate]
//             (multi-turn rollouts: generation stops at </tool_call>, the tool runs, its answer is
//             appended, the model continues on its KV cache), rewards = correctness + format (the demo's);
//             evaluated with the same tool loop (MultiTurnBatch + Model.generate's onTurn).
//    direct   the same GRPO (steps, prompts, completions per prompt) without tools; evaluated answering
//             directly. (More SFT on the base data, 250 updates of 16 at the demo's learning rate, lowered
//             its accuracy from 45% to 29% in a trial, so this branch gets none.)
//
// The expression starts with a space (" 13 + 7"): the tiny tokenizer encodes " 13" as one token, the way
// the question writes it, but "13" after a quote as two digits, so with the space the call copies the
// question's tokens (calculate() ignores whitespace).
//
// Outputs under --out (default ./calculator-tool-run): model/ (the random base), base/ (its SFT adapter),
// tool/sft, tool/grpo (adapter, metrics.jsonl with tools/call_frequency, samples.jsonl), direct/grpo,
// eval-*.jsonl (every held-out completion, with its outcome), report.json (all numbers, timings, the
// configuration).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  bootstrapMean,
  buildDemoData,
  Conversation,
  DEMO_DEFAULTS,
  DEMO_QUICK,
  demoPrompt,
  extractAnswer,
  formatDuration,
  GrpoTrainer,
  initModel,
  isCorrect,
  loadAdapter,
  loadToolsModule,
  mcnemarTest,
  Model,
  MultiTurnBatch,
  SftTrainer,
  writeJsonlAtomic,
} from '../../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------- settings

const FULL = {
  model: DEMO_DEFAULTS.model, // 4 layers x 128 hidden, the tiny tokenizer
  level: 1, // one addition or subtraction on numbers up to 20 (the demo's task)
  trainProblems: 4000, // train split: the base SFT set (as the demo), the tool traces, the GRPO prompts
  evalProblems: 200, // test split: never trained on
  lora: { rank: 64, alpha: 64 }, // the demo's
  // 1. the demo's SFT (fixed length: the update where the demo's probe stops it for seed 1)
  base: { steps: 180, batchSize: 64, learningRate: 3e-3, drillsPerProblem: 3 },
  // 2. the tool branch's SFT; then GRPO in both branches
  sft: { steps: 220, batchSize: 16, learningRate: 3e-3, toolTraces: 2000, answerDrills: 1000 },
  grpo: { steps: 4, promptsPerStep: 8, numGenerations: 8, learningRate: 5e-4, temperature: 1.0, lossType: 'dapo', beta: 0 },
  // generation budgets (tokens): a tool trace is ~100 (call ~60, the tool's answer ~30, "\boxed{N}" ~5)
  toolMaxTokens: 128,
  directMaxTokens: 24,
  maxToolCallingIterations: 2,
};

/** Seconds, for tests: every phase runs at toy size (its accuracies mean nothing). */
const QUICK = {
  model: { ...DEMO_QUICK.model, hidden: 64, intermediate: 128, layers: 2 },
  level: 1,
  trainProblems: 96,
  evalProblems: 8,
  lora: { rank: 16, alpha: 16 },
  base: { steps: 2, batchSize: 8, learningRate: 3e-3, drillsPerProblem: 1 },
  sft: { steps: 40, batchSize: 8, learningRate: 5e-3, toolTraces: 64, answerDrills: 16 },
  grpo: { steps: 2, promptsPerStep: 2, numGenerations: 4, learningRate: 5e-4, temperature: 1.0, lossType: 'dapo', beta: 0 },
  toolMaxTokens: 128,
  directMaxTokens: 16,
  maxToolCallingIterations: 2,
};

// ----------------------------------------------------------------------------------------------- helpers

const seconds = (since) => (performance.now() - since) / 1000;
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const mean = (xs) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const log = (msg) => process.stderr.write(`${msg}\n`);

/** The problem's arithmetic as one expression, steps applied left to right (" 13 + 7", " (13 + 7) * 2"). */
export function problemExpression(p) {
  let expr = String(p.start);
  let additive = false;
  for (const s of p.steps) {
    if ((s.op === '*' || s.op === '/') && additive) expr = `(${expr})`;
    expr = `${expr} ${s.op} ${s.operand}`;
    additive = s.op === '+' || s.op === '-';
  }
  return ` ${expr}`;
}

/** The tool call, the tool's answer as the rollout appends it (conversation.ts, plain text), the final answer. */
export function toolTrace(p, calculate) {
  const expression = problemExpression(p);
  const value = String(calculate.fn({ expression }, { signal: new AbortController().signal }));
  const call = `<tool_call>{"name": "${calculate.name}", "arguments": {"expression": "${expression}"}}</tool_call>`;
  return { call, answer: `\n<tool_response>\n${value}\n</tool_response>\n`, final: `\\boxed{${value}}` };
}

/** The tool's answers in a multi-turn completion's text. */
function toolAnswers(text) {
  return [...text.matchAll(/<tool_response>\n([\s\S]*?)\n<\/tool_response>/g)].map((m) => m[1]);
}

async function sftPhase(model, data, opts, c, seed, outputDir, label) {
  const losses = [];
  const sft = new SftTrainer({
    model,
    data,
    ...(opts.fresh ? { lora: { rank: c.lora.rank, alpha: c.lora.alpha, seed } } : {}), // else: train the attached adapter
    learningRate: opts.learningRate,
    schedule: { type: 'constant', warmupSteps: Math.min(10, Math.floor(opts.steps / 10)) },
    batchSize: opts.batchSize,
    maxSteps: opts.steps,
    seed,
    outputDir,
  });
  const every = Math.max(1, Math.round(opts.steps / 5));
  sft.on('step', (e) => {
    losses.push(e.loss);
    if (e.step % every === 0 || e.step === e.totalSteps) log(`  ${label} SFT ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(3)}`);
  });
  await sft.train();
  return { steps: losses.length, sequences: data.length, firstLoss: losses[0], finalLoss: losses[losses.length - 1] };
}

async function grpoPhase(model, dataset, c, seed, outputDir, label, extra) {
  const grpo = new GrpoTrainer({
    model,
    dataset,
    learningRate: c.grpo.learningRate,
    promptsPerStep: c.grpo.promptsPerStep,
    numGenerations: c.grpo.numGenerations,
    temperature: c.grpo.temperature,
    lossType: c.grpo.lossType,
    beta: c.grpo.beta,
    filterZeroStdGroups: true,
    maxSteps: c.grpo.steps,
    seed,
    sync: true,
    outputDir,
    sampleSteps: 1,
    samplesPerLog: 2,
    ...extra,
  });
  grpo.on('step', (e) => {
    const m = e.metrics;
    const calls = m['tools/call_frequency'] !== undefined ? `  tool calls/completion ${Number(m['tools/call_frequency']).toFixed(2)}  failed ${Number(m['tools/failure_frequency']).toFixed(2)}` : '';
    log(`  ${label} GRPO ${e.step}/${e.totalSteps}  reward ${Number(m.reward).toFixed(3)}${calls}`);
  });
  const result = await grpo.train();
  const series = (name) => result.metrics.map((m) => Number(m[name])).filter((v) => Number.isFinite(v));
  const rewards = series('reward');
  const calls = series('tools/call_frequency');
  const out = { steps: result.steps, rewardFirst: rewards[0], rewardLast: rewards[rewards.length - 1], rewardMean: mean(rewards) };
  if (calls.length > 0) Object.assign(out, { toolCallFrequency: mean(calls), toolFailureFrequency: mean(series('tools/failure_frequency')), turnsMean: mean(series('multi_turn/turns_mean')) });
  return out;
}

/** Greedy held-out accuracy with the tool: one generate call, the tool loop driven by a MultiTurnBatch. */
async function evalWithTool(model, examples, tools, c) {
  const started = performance.now();
  const turns = new MultiTurnBatch(model, { tools, maxToolCallingIterations: c.maxToolCallingIterations, toolTimeoutMs: 10_000 }, examples, 1, c.toolMaxTokens);
  const { results } = await model.generate(
    examples.map((_, i) => ({ tokens: turns.promptTokens(i) })),
    { temperature: 0, maxNewTokens: c.toolMaxTokens, stop: turns.stops(), onTurn: (t) => turns.onTurn(t) },
  );
  const records = results.map((r, i) => {
    const e = examples[i];
    const text = r.completions[0].text;
    const episode = turns.episodes[i];
    const answers = toolAnswers(text);
    const final = turns.answerText(r.completions[0], []); // the model's last turn, as GRPO's rewards see it
    const extracted = extractAnswer(final);
    const correct = isCorrect(final, e.answer);
    const outcome = correct
      ? 'correct'
      : episode.toolCalls === 0
        ? 'no tool call'
        : episode.toolFailures > 0
          ? 'tool call failed'
          : !answers.some((a) => isCorrect(`\\boxed{${a}}`, e.answer))
            ? 'wrong expression'
            : extracted === null
              ? 'no final answer'
              : 'final answer differs from the tool answer';
    return { index: e.index, question: e.question, answer: e.answer, completion: text, extracted: extracted?.value ?? null, correct, toolCalls: episode.toolCalls, toolFailures: episode.toolFailures, turns: episode.turns, outcome };
  });
  return summarize(records, started, turns.warnings);
}

/** Greedy held-out accuracy answering directly (the question alone, no tools shown). */
async function evalDirect(model, examples, c) {
  const started = performance.now();
  const { results } = await model.generate(
    examples.map((e) => e.prompt),
    { temperature: 0, maxNewTokens: c.directMaxTokens },
  );
  const records = results.map((r, i) => {
    const e = examples[i];
    const text = r.completions[0].text;
    const extracted = extractAnswer(text);
    const correct = isCorrect(text, e.answer);
    return { index: e.index, question: e.question, answer: e.answer, completion: text, extracted: extracted?.value ?? null, correct, outcome: correct ? 'correct' : extracted === null ? 'no answer' : 'wrong answer' };
  });
  return summarize(records, started, []);
}

function summarize(records, started, warnings) {
  const correct = records.filter((r) => r.correct).length;
  const interval = bootstrapMean(records.map((r) => (r.correct ? 1 : 0)), { seed: 0 });
  const outcomes = {};
  for (const r of records) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  const summary = { accuracy: correct / records.length, correct, total: records.length, interval: { lo: interval.lo, hi: interval.hi }, outcomes, seconds: seconds(started) };
  if (records[0]?.toolCalls !== undefined) {
    summary.toolCallFrequency = mean(records.map((r) => r.toolCalls)); // calls per completion
    summary.completionsWithToolCall = records.filter((r) => r.toolCalls > 0).length / records.length;
    summary.toolFailures = records.reduce((n, r) => n + r.toolFailures, 0);
  }
  if (warnings.length > 0) summary.warnings = warnings;
  return { summary, records };
}

// ------------------------------------------------------------------------------------------------- main

export async function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: { out: { type: 'string', default: 'calculator-tool-run' }, quick: { type: 'boolean', default: false }, seed: { type: 'string', default: '1' }, threads: { type: 'string', default: '0' } },
  });
  const seed = Number(values.seed);
  const threads = Number(values.threads);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
  if (!Number.isInteger(threads) || threads < 0) throw new Error(`--threads must be a non-negative integer, got ${values.threads}`);
  const c = structuredClone(values.quick ? QUICK : FULL);
  const outDir = resolve(values.out);
  const t0 = performance.now();
  const times = {};
  mkdirSync(outDir, { recursive: true });
  const report = {
    example: 'calculator-tool',
    quick: values.quick,
    seed,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverageAtStart: loadavg()[0] },
    config: c,
    outDir,
  };

  // The tool, exactly as `hayate train --tools examples/calculator-tool/tools.js` loads it.
  const tools = await loadToolsModule(join(here, 'tools.js'));
  const calculate = tools.find((t) => t.name === 'calculate');

  // The demo's random-weight model and data: train split for training, test split held out.
  let t = performance.now();
  const modelDir = join(outDir, 'model');
  const m = c.model;
  await initModel(modelDir, { shape: 'tiny', tokenizer: 'tiny', hidden: m.hidden, intermediate: m.intermediate, layers: m.layers, heads: m.heads, kvHeads: m.heads, std: m.std, embeddingStd: m.embeddingStd, seed, overwrite: true });
  const data = buildDemoData({ seed, level: c.level, trainProblems: c.trainProblems, evalProblems: c.evalProblems, drillsPerProblem: c.base.drillsPerProblem });
  // Tool traces, the prompt exactly as the rollouts render a plain-text prompt with tools (Conversation).
  const toolPrompt = (p) => new Conversation(demoPrompt(p), tools, undefined).promptText();
  const traces = data.train.slice(0, c.sft.toolTraces).map((p) => {
    const x = toolTrace(p, calculate);
    return { prompt: toolPrompt(p), completion: x.call + x.answer + x.final };
  });
  const drills = data.train.slice(c.sft.toolTraces, c.sft.toolTraces + c.sft.answerDrills).map((p) => {
    const x = toolTrace(p, calculate);
    return { prompt: x.call + x.answer, completion: x.final };
  });
  const toolSft = [...traces, ...drills];
  writeJsonlAtomic(join(outDir, 'tool-sft-examples.jsonl'), [...traces.slice(0, 5), ...drills.slice(0, 5)]);
  times.init = seconds(t);
  log(`model: ${m.layers} layers x ${m.hidden} hidden, random init (frozen), LoRA rank ${c.lora.rank}; ${traces.length} tool traces + ${drills.length} answer drills; ${data.eval.length} held-out problems`);

  const model = await Model.load(modelDir, { threads, gemm: 'builtin' });
  const base = {};
  const tool = {};
  const direct = {};
  const correctAfterGrpo = {};
  try {
    // 1. The base: the demo's SFT (reads the problem, answers directly).
    t = performance.now();
    log(`base: the demo's SFT (${data.sft.length} worked answers and drills)`);
    base.sft = await sftPhase(model, data.sft, { ...c.base, fresh: true }, c, seed, join(outDir, 'base'), 'base');
    times.baseSft = seconds(t);
    const baseEval = await evalDirect(model, data.eval, c);
    writeJsonlAtomic(join(outDir, 'eval-base.jsonl'), baseEval.records);
    base.direct = baseEval.summary;
    correctAfterGrpo.base = baseEval.records.map((r) => r.correct); // (the base has no GRPO: its own answers)
    log(`  base, answering directly: ${pct(base.direct.accuracy)}`);

    // 2a. The tool branch.
    t = performance.now();
    log(`tool: SFT on ${toolSft.length} tool traces and answer drills`);
    tool.sft = await sftPhase(model, toolSft, c.sft, c, seed, join(outDir, 'tool', 'sft'), 'tool');
    times.toolSft = seconds(t);
    const toolSftEval = await evalWithTool(model, data.eval, tools, c);
    writeJsonlAtomic(join(outDir, 'eval-tool-sft.jsonl'), toolSftEval.records);
    tool.afterSft = toolSftEval.summary;
    log(`  with the tool after SFT: ${pct(tool.afterSft.accuracy)}, tool calls per problem ${tool.afterSft.toolCallFrequency.toFixed(2)}`);
    t = performance.now();
    log('tool: GRPO with tools: [calculate]');
    tool.grpo = await grpoPhase(model, data.grpo, c, seed, join(outDir, 'tool', 'grpo'), 'tool', {
      tools: [calculate],
      maxToolCallingIterations: c.maxToolCallingIterations,
      maxCompletionLength: c.toolMaxTokens,
    });
    times.toolGrpo = seconds(t);
    const toolGrpoEval = await evalWithTool(model, data.eval, tools, c);
    writeJsonlAtomic(join(outDir, 'eval-tool-grpo.jsonl'), toolGrpoEval.records);
    tool.afterGrpo = toolGrpoEval.summary;
    correctAfterGrpo.tool = toolGrpoEval.records.map((r) => r.correct);
    log(`  with the tool after GRPO: ${pct(tool.afterGrpo.accuracy)}, tool calls per problem ${tool.afterGrpo.toolCallFrequency.toFixed(2)}`);
    // the same weights asked without the tool (not what it was last trained for; for the record)
    tool.directAfterGrpo = (await evalDirect(model, data.eval, c)).summary;

    // 2b. The direct branch: back to the base adapter, the same GRPO without the tool.
    await loadAdapter(model, join(outDir, 'base'));
    t = performance.now();
    log('direct: GRPO without tools');
    direct.grpo = await grpoPhase(model, data.grpo, c, seed, join(outDir, 'direct', 'grpo'), 'direct', { maxCompletionLength: c.directMaxTokens });
    times.directGrpo = seconds(t);
    const directGrpoEval = await evalDirect(model, data.eval, c);
    writeJsonlAtomic(join(outDir, 'eval-direct-grpo.jsonl'), directGrpoEval.records);
    direct.afterGrpo = directGrpoEval.summary;
    correctAfterGrpo.direct = directGrpoEval.records.map((r) => r.correct);
    log(`  direct after GRPO: ${pct(direct.afterGrpo.accuracy)}`);
  } finally {
    await model.dispose();
  }

  // 3. The tool model after GRPO against each direct model, paired on the same held-out problems; the report.
  const paired = (directCorrect, directAccuracy) => {
    const mc = mcnemarTest(directCorrect, correctAfterGrpo.tool);
    return { toolMinusDirect: tool.afterGrpo.accuracy - directAccuracy, bothRight: mc.both, neither: mc.neither, onlyDirect: mc.baseOnly, onlyTool: mc.trainedOnly, mcnemarP: mc.pValue };
  };
  times.total = seconds(t0);
  Object.assign(report, {
    base,
    tool,
    direct,
    comparison: { problems: data.eval.length, vsBase: paired(correctAfterGrpo.base, base.direct.accuracy), vsDirectGrpo: paired(correctAfterGrpo.direct, direct.afterGrpo.accuracy) },
    seconds: times,
  });
  writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(formatReport(report));
  return report;
}

export function formatReport(r) {
  const acc = (s) => `${pct(s.accuracy)} (${s.correct}/${s.total}) [${(100 * s.interval.lo).toFixed(1)}, ${(100 * s.interval.hi).toFixed(1)}]`;
  const row = (cells) => `${cells[0].padEnd(24)}${cells[1].padEnd(34)}${cells[2]}`;
  const s = r.seconds;
  const failures = (summary) =>
    Object.entries(summary.outcomes)
      .filter(([k]) => k !== 'correct')
      .map(([k, n]) => `${n} ${k}`)
      .join(', ') || 'none';
  return [
    `calculator-tool: level-${r.config.level} word problems, ${r.comparison.problems} held-out (test split), greedy; seed ${r.seed}; ${r.machine.cpus} CPUs`,
    `base (the demo's SFT, ${r.base.sft.steps} updates), answering directly: ${acc(r.base.direct)}`,
    '',
    row(['from the base:', 'with the tool (calculate)', 'without (answers directly)']),
    row(['before GRPO', `${acc(r.tool.afterSft)}`, acc(r.base.direct)]),
    row([`after GRPO (${r.tool.grpo.steps} steps)`, acc(r.tool.afterGrpo), acc(r.direct.afterGrpo)]),
    `(the tool branch's SFT: ${r.tool.sft.steps} updates of ${r.config.sft.batchSize} on ${r.tool.sft.sequences} tool traces and answer drills; the direct branch: none beyond the base)`,
    ...[
      ['the base', r.comparison.vsBase],
      ['the direct model after GRPO', r.comparison.vsDirectGrpo],
    ].map(([name, x]) => `the tool model after GRPO vs ${name}: right where it is wrong on ${x.onlyTool} problems, wrong where it is right on ${x.onlyDirect}; McNemar p = ${x.mcnemarP.toPrecision(2)}`),
    '',
    `tool calls per held-out problem: ${r.tool.afterSft.toolCallFrequency.toFixed(2)} after SFT, ${r.tool.afterGrpo.toolCallFrequency.toFixed(2)} after GRPO; ` +
      `GRPO rollouts: ${r.tool.grpo.toolCallFrequency?.toFixed(2) ?? '?'} calls per completion, ${(100 * (r.tool.grpo.toolFailureFrequency ?? 0)).toFixed(1)}% failed`,
    `tool model's misses after GRPO: ${failures(r.tool.afterGrpo)}`,
    `the tool model asked without the tool: ${acc(r.tool.directAfterGrpo)}`,
    `GRPO mean reward (first -> last step): tool ${r.tool.grpo.rewardFirst.toFixed(3)} -> ${r.tool.grpo.rewardLast.toFixed(3)}, direct ${r.direct.grpo.rewardFirst.toFixed(3)} -> ${r.direct.grpo.rewardLast.toFixed(3)}`,
    `wall time: base SFT ${formatDuration(s.baseSft)}; tool SFT ${formatDuration(s.toolSft)}, GRPO ${formatDuration(s.toolGrpo)}; ` +
      `direct GRPO ${formatDuration(s.directGrpo)}; total ${formatDuration(s.total)}`,
    `report: ${join(r.outDir, 'report.json')}`,
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err?.stack ?? String(err));
    process.exit(1);
  });
}
