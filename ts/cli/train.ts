// `hayate train`: GRPO (default) or SFT training of LoRA adapters from the command line. Every setting is a
// flag and a config-file key (see train-config.ts); the run writes checkpoints, metrics.jsonl, samples.jsonl,
// reward_curve.svg and the final adapter to --output-dir. Ctrl-C stops the current step, writes a checkpoint
// of the last completed one and exits with 130 (a second Ctrl-C exits at once).
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { loadAdapter } from '../adapter.js';
import type { Example } from '../data/dataset.js';
import { loadDataset } from '../data/dataset.js';
import { formatIssue } from '../data/errors.js';
import { syntheticExamples } from '../data/synthetic.js';
import { initWorld, threadsPerRank, type World } from '../distributed/world.js';
import { AbortError, HayateError } from '../errors.js';
import { plotMetricsFile } from '../metrics/plot.js';
import { ProgressLine } from '../metrics/progress.js';
import { MetricsWriter } from '../metrics/writer.js';
import { LORA_TARGETS, Model, type LoraOptions, type LoraTarget } from '../model.js';
import type { ImportanceSamplingLevel, KlEstimator, OptimizerOptions, RolloutCorrectionMode } from '../trainer-core.js';
import { listCheckpoints } from '../train/checkpoint.js';
import { GrpoTrainer } from '../train/grpo-trainer.js';
import { describeLoss, type GeneratorMode, type GrpoLossType, type GrpoTrainerOptions } from '../train/grpo-options.js';
import { describeMemoryPlan, memoryPlan } from '../train/memory-plan.js';
import { GRPO_DEFAULTS } from '../training-defaults.js';
import type { ScheduleOptions } from '../train/schedule.js';
import { SftTrainer } from '../train/sft-trainer.js';
import { loadEnvironmentModule } from '../train/multi-turn.js';
import { loadToolsModule } from '../tools/load.js';
import { EXIT_INTERRUPTED, reportAndExit } from './errors.js';
import { addSettingOptions, mergeSettings, readConfigFile, TRAIN_SETTINGS, type SettingValues } from './train-config.js';

/** In a data-parallel job only rank 0 reports (progress, warnings, start-up lines); errors name their rank. */
let quiet = false;

function warn(message: string): void {
  if (!quiet) process.stderr.write(`hayate: warning: ${message}\n`);
}

function info(message: string): void {
  if (!quiet) process.stderr.write(`hayate: ${message}\n`);
}

function invalid(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

/** Ctrl-C: the first aborts the run gracefully (checkpoint, exit 130), the second exits at once. */
function interruptController(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let count = 0;
  const onSigint = () => {
    count++;
    if (count === 1) {
      process.stderr.write('\nhayate: interrupted: stopping the current step and writing a checkpoint (Ctrl-C again to quit at once)\n');
      controller.abort();
    } else {
      process.stderr.write('\nhayate: interrupted again: exiting without a checkpoint\n');
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

async function loadExamples(v: SettingValues): Promise<Example[]> {
  const data = v.dataset as string | undefined;
  if (data === undefined) throw invalid('no training data: pass --data <file> (or gsm8k, gsm8k:test, synthetic[:level]), or set dataset in the config file');
  const instruction = (v.instruction as string) === '' ? null : (v.instruction as string);
  const prompt = { instruction, chat: v.chat_template as boolean, systemPrompt: v.system_prompt as string | undefined };
  if (prompt.systemPrompt !== undefined && !prompt.chat) throw invalid('--system needs --chat');
  const synthetic = /^synthetic(?::(\d+))?$/.exec(data);
  if (synthetic) {
    const level = synthetic[1] !== undefined ? Number(synthetic[1]) : 1;
    return syntheticExamples({ count: v.synthetic_count as number, seed: v.seed as number, level, split: 'train', ...prompt });
  }
  const loaded = await loadDataset(data, {
    format: v.dataset_format as 'gsm8k' | 'jsonl',
    promptField: v.prompt_field as string,
    answerField: v.answer_field as string,
    onInvalid: v.skip_invalid ? 'skip' : 'error',
    ...prompt,
  });
  if (loaded.skipped.length > 0) warn(`skipped ${loaded.skipped.length} invalid line${loaded.skipped.length > 1 ? 's' : ''} of ${data} (first: ${formatIssue(loaded.skipped[0])})`);
  return loaded.examples;
}

function loraOptions(v: SettingValues): LoraOptions {
  const lora: LoraOptions = { rank: v.lora_r as number, alpha: v.lora_alpha as number, rslora: v.use_rslora as boolean };
  const targets = v.lora_target_modules as string[] | undefined;
  if (targets && !(targets.length === 1 && targets[0] === 'all-linear')) {
    for (const t of targets) if (!(LORA_TARGETS as readonly string[]).includes(t)) throw invalid(`unknown LoRA target module '${t}' (${LORA_TARGETS.join(', ')}, or all-linear)`);
    lora.targets = targets as LoraTarget[];
  }
  return lora;
}

function oneLine(text: string, max = 240): string {
  const t = text.replace(/\s*\n\s*/g, ' ⏎ ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function fmt(v: unknown): string {
  return typeof v === 'number' ? (Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v * 10) / 10) : v.toPrecision(3)) : String(v);
}

/**
 * Prompts per step (the global batch): prompts_per_step, else TRL's per_device_train_batch_size x grad
 * accum x ranks / G, else the trainer's default.
 */
function promptsPerStep(v: SettingValues, worldSize: number): number | undefined {
  const G = v.num_generations as number;
  const given = v.prompts_per_step as number | undefined;
  if (given !== undefined || v.per_device_train_batch_size === undefined) return given;
  const completions = (v.per_device_train_batch_size as number) * (v.gradient_accumulation_steps as number) * worldSize;
  if (completions % G !== 0) throw invalid(`per_device_train_batch_size x gradient_accumulation_steps (${completions}) must be a multiple of num_generations (${G}); or set prompts_per_step`);
  return completions / G;
}

function optimizerOptions(v: SettingValues): Omit<OptimizerOptions, 'lr'> {
  return { weightDecay: v.weight_decay as number, maxGradNorm: v.max_grad_norm as number, beta1: v.adam_beta1 as number, beta2: v.adam_beta2 as number, eps: v.adam_epsilon as number };
}

function scheduleOptions(v: SettingValues): ScheduleOptions {
  return { type: v.lr_scheduler_type as 'constant' | 'linear' | 'cosine', warmupRatio: v.warmup_ratio as number, warmupSteps: v.warmup_steps as number | undefined };
}

/** How rollouts run: the schedule (--off-policy-steps; --sync = 0) and the engine (--generator; --generator-copy = copy). */
interface RolloutPlan {
  offPolicySteps: 0 | 1;
  generator: 'shared' | 'copy' | 'none';
  /** CPU threads of the trainer's engine and of the generator's (0: one per hardware thread). */
  threads: number;
  generatorThreads: number;
}

function rolloutPlan(v: SettingValues, world: World): RolloutPlan {
  const given = v.off_policy_steps as 0 | 1 | undefined;
  if (v.sync && given === 1) throw invalid('--sync means --off-policy-steps 0; pass one of them');
  const offPolicySteps = given ?? (v.sync ? 0 : GRPO_DEFAULTS.offPolicySteps);
  const named = v.generator as RolloutPlan['generator'] | undefined;
  if (v.separate_generator && named !== undefined && named !== 'copy') throw invalid(`--generator-copy is --generator copy, but --generator ${named} was given`);
  let generator = named ?? (v.separate_generator ? 'copy' : GRPO_DEFAULTS.generator);
  if (offPolicySteps === 0 && generator !== 'none') {
    if (named !== undefined || v.separate_generator) warn(`--generator ${generator} has no effect on-policy (--sync, --off-policy-steps 0): nothing overlaps`);
    generator = 'none';
  }
  if (v.mode === 'sft') generator = 'none';
  // ranks on one machine split its cores; a generator engine and the trainer split a rank's
  const cores = world.localSize > 1 ? threadsPerRank(availableParallelism(), world.localSize) : availableParallelism();
  let threads = v.threads === 0 && world.localSize > 1 ? cores : (v.threads as number);
  let generatorThreads = v.generator_threads as number;
  if (generator !== 'none' && v.backend === 'cpu') {
    const t = v.threads as number;
    const g = generatorThreads;
    if (t === 0 && g === 0) {
      threads = Math.max(1, Math.ceil(cores / 2));
      generatorThreads = Math.max(1, Math.floor(cores / 2));
    } else if (g === 0) {
      generatorThreads = Math.max(1, cores - t);
    } else if (t === 0) {
      threads = Math.max(1, cores - g);
    }
  }
  return { offPolicySteps, generator, threads, generatorThreads };
}

/** GrpoTrainer's options from the settings; a setting left undefined takes the trainer's default. */
function grpoOptions(model: Model, generator: Model | GeneratorMode, examples: Example[], v: SettingValues, world: World, plan?: RolloutPlan): GrpoTrainerOptions {
  const resume = v.resume_from_checkpoint as string | boolean | undefined;
  return {
    model,
    generator,
    dataset: examples,
    rewards: v.reward_funcs as string[] | undefined,
    rewardWeights: v.reward_weights as number[] | undefined,
    rewardTimeoutMs: Math.round((v.reward_timeout as number) * 1000),
    lora: v.adapter !== undefined ? undefined : loraOptions(v),
    learningRate: v.learning_rate as number | undefined,
    optimizer: optimizerOptions(v),
    schedule: scheduleOptions(v),
    promptsPerStep: promptsPerStep(v, world.size),
    numGenerations: v.num_generations as number,
    gradientAccumulationSteps: v.gradient_accumulation_steps as number,
    maxCompletionLength: v.max_completion_length as number,
    temperature: v.temperature as number,
    topP: v.top_p as number,
    topK: v.top_k as number,
    minP: v.min_p as number,
    stop: v.stop as string[] | undefined,
    numIterations: v.num_iterations as number,
    scaleRewards: v.scale_rewards as 'group' | 'batch' | 'none',
    filterZeroStdGroups: v.filter_zero_std_groups as boolean,
    maxNumGenBatches: v.max_num_gen_batches as number,
    maskTruncatedCompletions: v.mask_truncated_completions as boolean,
    beta: v.beta as number,
    klEstimator: v.kl_estimator as KlEstimator,
    epsilon: v.epsilon as number | undefined,
    epsilonHigh: v.epsilon_high as number | undefined,
    clipRatioC: v.clip_ratio_c as number | undefined,
    lossType: v.loss_type as GrpoLossType,
    importanceSamplingLevel: v.importance_sampling_level as ImportanceSamplingLevel,
    rolloutCorrection: v.vllm_importance_sampling_correction as boolean | 'auto',
    rolloutCorrectionMode: v.vllm_importance_sampling_mode as RolloutCorrectionMode,
    rolloutCorrectionMin: v.vllm_importance_sampling_clip_min as number,
    rolloutCorrectionMax: v.vllm_importance_sampling_clip_max as number,
    topEntropyQuantile: v.top_entropy_quantile as number,
    maxSteps: v.max_steps as number | undefined,
    numTrainEpochs: v.num_train_epochs as number,
    seed: v.seed as number,
    sync: v.sync as boolean,
    offPolicySteps: plan?.offPolicySteps,
    generatorThreads: plan?.generatorThreads,
    outputDir: v.output_dir as string,
    saveSteps: v.save_steps as number,
    saveTotalLimit: v.save_total_limit as number | undefined,
    sampleSteps: v.sample_steps as number,
    samplesPerLog: v.num_completions_to_print as number,
    resumeFrom: resume === false ? undefined : resume,
    checkpointOnAbort: true,
    plot: v.plot as boolean,
    maxBatch: v.max_batch as number | undefined,
    log: (m) => info(m),
    world,
  };
}

/** Shows a GRPO run on stderr: a progress line per step, sample completions, checkpoints written. */
function reportGrpoProgress(trainer: GrpoTrainer, v: SettingValues): ProgressLine {
  const total = trainer.totalSteps;
  const tty = process.stderr.isTTY === true;
  const logEvery = v.logging_steps as number;
  const progress = new ProgressLine({ label: 'train', total, intervalMs: 0 });
  trainer.on('step', (e) => {
    if (!tty && e.step % logEvery !== 0 && e.step !== total) return;
    const m = e.metrics;
    const values: Record<string, number | string> = { reward: m.reward as number, len: m['completions/mean_length'] as number };
    if (typeof m.kl === 'number') values.kl = m.kl;
    values['gen s'] = m['timing/generation_s'] as number;
    values['train s'] = m['timing/training_s'] as number;
    values['tok/s'] = m.tokens_per_second as number;
    progress.update(e.step, values);
  });
  trainer.on('sample', (e) => {
    progress.finish();
    for (const s of e.samples) {
      process.stderr.write(`  sample @ step ${e.step} (reward ${fmt(s.reward)}, answer ${s.answer}, ${s.tokens} tokens${s.finishReason === 'length' ? ', cut' : ''}): ${oneLine(s.completion)}\n`);
    }
  });
  trainer.on('checkpoint', (e) => {
    progress.finish();
    info(`saved ${e.dir}`);
  });
  return progress;
}

async function runGrpo(model: Model, generator: Model | GeneratorMode, examples: Example[], v: SettingValues, signal: AbortSignal, world: World, plan?: RolloutPlan): Promise<number> {
  const options = grpoOptions(model, generator, examples, v, world, plan);
  // multi-turn rollouts: tools and an environment from modules
  if (v.tools !== undefined) options.tools = await loadToolsModule(v.tools as string);
  if (v.environment !== undefined) options.environment = await loadEnvironmentModule(v.environment as string);
  options.environmentWeight = v.environment_weight as number;
  options.maxToolCallingIterations = v.max_tool_calling_iterations as number | undefined;
  options.toolTimeoutMs = Math.round((v.tool_timeout as number) * 1000);
  const outputDir = options.outputDir as string;
  if (options.resumeFrom === undefined && listCheckpoints(outputDir).length > 0 && !v.overwrite_output_dir) {
    throw invalid(`${outputDir} already holds checkpoints of an earlier run: continue it with --resume, or start over with --overwrite-output-dir (or another --output-dir)`);
  }
  const trainer = new GrpoTrainer(options);
  const c = trainer.config;
  info(
    `GRPO: ${trainer.totalSteps} steps x ${c.promptsPerStep} prompts x ${c.numGenerations} completions (up to ${c.sampling.maxCompletionLength} tokens), lr ${c.learningRate}, ` +
      `${c.sync ? 'on-policy (sync)' : `one step off-policy, ${describeGenerator(model, plan)}`}, ${examples.length} prompts in the dataset; ` +
      `world size ${world.size}${world.size > 1 ? ` (${c.promptsPerStep / world.size} prompts per rank, ${model.info.backend} threads per rank ${v.threads === 0 ? 'split' : v.threads})` : ''}; writing to ${outputDir}`,
  );
  info(describeLoss(c));
  if (c.multiTurn) {
    const mt = c.multiTurn;
    const limit = mt.maxToolCallingIterations === Number.MAX_SAFE_INTEGER ? 'as many as the token budget allows' : `up to ${mt.maxToolCallingIterations}`;
    info(
      `multi-turn: ${mt.tools.length > 0 ? `tools ${mt.tools.map((t) => t.name).join(', ')} (calls per completion: ${limit}; ${mt.toolTimeoutMs / 1000} s per call)` : 'no tools'}` +
        `${mt.environment ? `; environment ${v.environment} (reward weight ${mt.environmentWeight})` : ''}; appended tokens carry no loss`,
    );
  }
  if (plan) info(grpoMemoryPlan(model, plan, examples, v, c.promptsPerStep / world.size, c.numGenerations, c.sampling.maxCompletionLength));
  const progress = quiet ? undefined : reportGrpoProgress(trainer, v);
  try {
    const result = await trainer.train({ signal });
    progress?.finish();
    const last = result.metrics[result.metrics.length - 1];
    const first = result.metrics[0];
    if (first && last) info(`done: steps ${result.startStep + 1}-${result.steps} in ${result.seconds.toFixed(1)} s; reward ${fmt(first.reward)} -> ${fmt(last.reward)}`);
    info(`adapter: ${outputDir} (PEFT format); metrics: ${join(outputDir, 'metrics.jsonl')}${v.plot ? `; plot: ${join(outputDir, 'reward_curve.svg')}` : ''}`);
    return 0;
  } catch (err) {
    progress?.finish();
    if (err instanceof AbortError) {
      const ckpts = listCheckpoints(outputDir);
      const last = ckpts[ckpts.length - 1];
      info(last ? `stopped; newest checkpoint: ${last.dir} (continue with --resume)` : 'stopped before the first step completed; no checkpoint written');
      return EXIT_INTERRUPTED;
    }
    throw err;
  }
}

/** Where rollouts run, for the start-up line. */
function describeGenerator(model: Model, plan: RolloutPlan | undefined): string {
  const cpu = model.info.backend === 'cpu';
  const threads = (n: number) => (n === 0 ? 'all threads' : `${n} thread${n === 1 ? '' : 's'}`);
  switch (plan?.generator) {
    case 'shared':
      return `generation overlaps the update on a shared-base generator context (${cpu ? `${threads(plan.generatorThreads)}; trainer ${threads(plan.threads)}` : 'its own CUDA stream'})`;
    case 'copy':
      return `generation overlaps the update on a second copy of the model (${cpu ? `${threads(plan.generatorThreads)}; trainer ${threads(plan.threads)}` : 'its own CUDA stream'})`;
    default:
      return 'generation and update take turns on one engine (--generator none)';
  }
}

/** The memory plan line: weights (once or twice), LoRA snapshot, KV-cache budget. */
function grpoMemoryPlan(model: Model, plan: RolloutPlan, examples: Example[], v: SettingValues, promptsPerStep: number, numGenerations: number, maxCompletionLength: number): string {
  const lora = model.lora ?? { rank: v.lora_r as number, modules: model.loraModules({ targets: loraOptions(v).targets }) };
  let longestPrompt = 1;
  for (const e of examples.slice(0, 1000)) longestPrompt = Math.max(longestPrompt, model.encodePrompt(e.prompt).length); // a sample: the first 1000
  const p = memoryPlan({ info: model.info, generator: plan.generator, lora, promptsPerStep, numGenerations, maxCompletionLength, longestPrompt, offPolicySteps: plan.offPolicySteps });
  return describeMemoryPlan(p, plan.generator);
}

async function runSft(model: Model, examples: Example[], v: SettingValues, signal: AbortSignal, world: World): Promise<number> {
  if (v.resume_from_checkpoint !== undefined && v.resume_from_checkpoint !== false) throw invalid('--resume is for GRPO runs; an SFT run restarts (it is short)');
  const outputDir = v.output_dir as string;
  const trainer = new SftTrainer({
    model,
    data: examples,
    lora: v.adapter !== undefined ? undefined : loraOptions(v),
    learningRate: v.learning_rate as number | undefined,
    optimizer: optimizerOptions(v),
    schedule: scheduleOptions(v),
    batchSize: v.per_device_train_batch_size as number | undefined,
    gradientAccumulationSteps: v.gradient_accumulation_steps as number,
    epochs: v.num_train_epochs as number,
    maxSteps: v.max_steps as number | undefined,
    seed: v.seed as number,
    maxLength: v.max_length as number | undefined,
    outputDir,
    world,
  });
  const total = trainer.totalSteps;
  info(`SFT: ${total} updates on ${examples.length} examples; world size ${world.size}; writing to ${outputDir}`);
  const metricsPath = join(outputDir, 'metrics.jsonl');
  const metrics = world.isMain ? new MetricsWriter(metricsPath) : undefined;
  const progress = new ProgressLine({ label: 'sft', total, intervalMs: 0 });
  const tty = process.stderr.isTTY === true;
  let numTokens = 0;
  trainer.on('step', (e) => {
    numTokens += e.tokens;
    metrics?.write({ step: e.step, epoch: e.epoch, loss: e.loss, learning_rate: e.learningRate, grad_norm: e.gradNorm, num_tokens: numTokens, 'timing/step_s': e.seconds, world_size: world.size });
    if (quiet) return;
    if (tty || e.step % (v.logging_steps as number) === 0 || e.step === total) progress.update(e.step, { loss: e.loss, lr: e.learningRate });
  });
  try {
    const r = await trainer.train({ signal });
    progress.finish();
    metrics?.close();
    if (v.plot && world.isMain) plotMetricsFile(metricsPath, join(outputDir, 'loss_curve.svg'), { metric: 'loss', title: 'SFT loss per update' });
    info(`done: ${r.steps} updates in ${r.seconds.toFixed(1)} s; loss ${fmt(r.losses[0])} -> ${fmt(r.losses[r.losses.length - 1])}; adapter: ${outputDir}`);
    if (r.truncated > 0) warn(`${r.truncated} completions were cut to --max-length`);
    return 0;
  } catch (err) {
    progress.finish();
    metrics?.close();
    if (err instanceof AbortError) {
      info('stopped; SFT writes its adapter only at the end');
      return EXIT_INTERRUPTED;
    }
    throw err;
  }
}

const HELP_AFTER = `
Every flag has a config-file key (shown in brackets); put them in a JSON or YAML file and pass --config.
Keys follow TRL's GRPOConfig / TrainingArguments names. Flags given on the command line override the file.

Examples:
  hayate train ./Qwen3-0.6B --data gsm8k/train.jsonl -G 8 -P 4 -m 512 --lr 5e-6 --max-steps 200 -o runs/gsm8k
  hayate train ./tiny --data synthetic:2 --mode sft --lr 1e-3 --epochs 3 -o runs/sft
  hayate train ./tiny --config grpo.yaml --adapter runs/sft --sync
  hayate train ./tiny --config grpo.yaml --resume            # continue from the newest checkpoint

Config file (YAML):
  dataset: gsm8k/train.jsonl
  output_dir: runs/gsm8k
  learning_rate: 5.0e-6
  num_generations: 8
  prompts_per_step: 4
  max_completion_length: 512
  max_steps: 200
  lora_r: 32
  lora_alpha: 64
  reward_funcs: [correctness, format]
  save_steps: 50
`;

export function trainCommand(): Command {
  const cmd = new Command('train')
    .description('train LoRA adapters with GRPO (or SFT with --mode sft) on a dataset of problems with verifiable answers')
    .argument('[model]', 'model directory (Hugging Face layout)')
    .option('-c, --config <file>', 'JSON or YAML file of settings (keys as in brackets below); flags override it');
  addSettingOptions(cmd);
  cmd.addHelpText('after', HELP_AFTER);
  cmd.action(async (modelArg: string | undefined, _opts: unknown, command: Command) => {
    const interrupt = interruptController();
    let code = 0;
    let world: World | undefined;
    try {
      // under mpirun / srun this process is one rank of a data-parallel job (one process otherwise)
      world = await initWorld();
      quiet = !world.isMain;
      const configPath = (command.opts() as { config?: string }).config;
      const config = configPath !== undefined ? readConfigFile(configPath, warn) : {};
      const v = mergeSettings(command, config);
      const modelDir = modelArg ?? (v.model_name_or_path as string | undefined);
      if (modelDir === undefined) throw invalid('no model: pass the model directory as the first argument (or model_name_or_path in the config file)');
      const plan = rolloutPlan(v, world);
      const examples = await loadExamples(v);
      const backend = v.backend as 'cpu' | 'cuda';
      const { threads, generatorThreads } = plan;
      const gemm = v.gemm as 'auto' | 'blas' | 'builtin';
      const weights = v.weights as 'auto' | 'bf16' | 'f32';
      const device = world.localRank; // one GPU per rank on a machine (CUDA; ignored by the CPU backend)
      const model = await Model.load(modelDir, { backend, threads, gemm, weights, device, signal: interrupt.signal });
      let generator: Model | undefined;
      try {
        if (v.adapter !== undefined) await loadAdapter(model, v.adapter as string);
        if (v.mode === 'sft') code = await runSft(model, examples, v, interrupt.signal, world);
        else {
          // copy: a second full model; shared: GrpoTrainer creates a context on this model's weights
          if (plan.generator === 'copy') generator = await Model.load(modelDir, { backend, threads: generatorThreads, gemm, weights, device, signal: interrupt.signal });
          code = await runGrpo(model, plan.generator === 'copy' ? (generator as Model) : plan.generator, examples, v, interrupt.signal, world, plan);
        }
      } finally {
        await generator?.dispose();
        await model.dispose();
      }
    } catch (err) {
      interrupt.dispose();
      if (world !== undefined && world.size > 1) {
        // one rank failing ends the whole job (no rank waits forever in a collective); the message names it
        world.abort(err instanceof AbortError ? 'interrupted' : errorMessage(err), err instanceof AbortError ? EXIT_INTERRUPTED : 1);
      }
      if (err instanceof AbortError) {
        info('interrupted');
        process.exit(EXIT_INTERRUPTED);
      }
      reportAndExit(err);
    }
    interrupt.dispose();
    // an interrupted job: rank 0 has written its checkpoint, so it ends every rank; the others wait for it
    if (code !== 0 && world.size > 1 && world.isMain) world.abort('stopped', code);
    world.finalize();
    process.exit(code);
  });
  return cmd;
}

/** An error as one line: its message and code (the stack for an unexpected one). */
function errorMessage(err: unknown): string {
  if (err instanceof HayateError) return `error: ${err.message} [${err.code}]`;
  return `error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
}

/** The settings table (for documentation and tests). */
export { TRAIN_SETTINGS };
