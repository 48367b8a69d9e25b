// `hayate train` settings: one table lists every setting once, with its config-file key (TRL's GRPOConfig /
// TrainingArguments name where one exists), its command-line flag, its type and help text. The command's
// flags, its --help, config-file parsing and validation are all generated from this table, so a flag and
// its config key cannot drift apart (the README's settings table is generated from it too: settings-doc.ts).
// Training defaults and shared bounds come from training-defaults.ts, their one definition. Precedence:
// flag > config file > default.
import { readFileSync, existsSync } from 'node:fs';
import { extname } from 'node:path';
import { Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { HayateError } from '../errors.js';
import { IMPORTANCE_SAMPLING_LEVELS, KL_ESTIMATORS, LOSS_TYPES, ROLLOUT_CORRECTION_MODES } from '../trainer-core.js';
import {
  GRPO_DEFAULTS,
  LEARNING_RATE_DEFAULTS,
  LORA_DEFAULTS,
  LOSS_DEFAULTS,
  OPTIMIZER_DEFAULTS,
  ROLLOUT_CORRECTION_DEFAULTS,
  RUN_DEFAULTS,
  SAMPLING_DEFAULTS,
  SCHEDULE_DEFAULTS,
  SETTING_BOUNDS,
  SFT_DEFAULTS,
  inBounds,
} from '../training-defaults.js';

export type SettingType = 'int' | 'float' | 'bool' | 'autobool' | 'string' | 'list' | 'numlist' | 'scale' | 'resume';

export interface Setting {
  /** Config-file key (snake_case, TRL's name where it has one). */
  key: string;
  /** Long flag without dashes (kebab-case). */
  flag: string;
  /** Short flag letter. */
  short?: string;
  /** Bool settings defaulting to true get a --no-<flag> form instead of --<flag>. */
  type: SettingType;
  description: string;
  /** Range of int/float values: inclusive unless minOpen / maxOpen. */
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
  choices?: readonly string[];
  /** Shown in --help and used when neither a flag nor the config sets it. */
  default?: unknown;
  /** Shown instead, for a setting without a `default` whose value the trainer decides (per mode, or from another setting). */
  defaultText?: string;
  /** Other accepted config keys (aliases). */
  aliases?: readonly string[];
  /** list: the flag is repeated for several values, never split at commas (stop strings may hold commas). */
  repeatOnly?: boolean;
}

/** A number as help text shows it: 5e-6 rather than 0.000005. */
export function showNumber(n: number): string {
  return n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential() : String(n);
}

const GRPO_LOSS_TYPES = LOSS_TYPES.filter((t) => t !== 'sft');

export const TRAIN_SETTINGS: readonly Setting[] = [
  { key: 'model_name_or_path', flag: 'model', type: 'string', description: 'model directory (Hugging Face layout), instead of the positional argument', aliases: ['model'] },
  // data
  { key: 'dataset', flag: 'data', type: 'string', description: 'training data: gsm8k or gsm8k:test (the bundled GSM8K splits), a GSM8K JSONL file ({question, answer ending in "#### N"}), any JSONL with --dataset-format jsonl, or synthetic[:level] (generated arithmetic problems, level 1-5)', aliases: ['train_file', 'dataset_name'] },
  { key: 'dataset_format', flag: 'dataset-format', type: 'string', choices: ['gsm8k', 'jsonl'], default: 'gsm8k', description: 'format of a dataset file' },
  { key: 'prompt_field', flag: 'prompt-field', type: 'string', default: 'prompt', description: 'jsonl: field holding the question (dotted paths allowed)' },
  { key: 'answer_field', flag: 'answer-field', type: 'string', default: 'answer', description: 'jsonl: field holding the answer (a number, or text ending in "#### N")' },
  { key: 'skip_invalid', flag: 'skip-invalid', type: 'bool', default: false, description: 'skip dataset lines that do not parse (reported with their line numbers) instead of failing' },
  { key: 'synthetic_count', flag: 'synthetic-count', type: 'int', min: 1, default: 2000, description: 'number of problems for a synthetic dataset (train split)' },
  { key: 'instruction', flag: 'instruction', type: 'string', default: 'Please reason step by step, and put your final answer within \\boxed{}.', description: 'instruction appended to each question ("" for none)' },
  { key: 'chat_template', flag: 'chat', type: 'bool', default: false, description: "send prompts as a user message through the model's chat template" },
  { key: 'system_prompt', flag: 'system', type: 'string', description: 'system message (with --chat)' },
  // run
  { key: 'output_dir', flag: 'output-dir', short: 'o', type: 'string', default: 'hayate-output', description: 'directory for checkpoints, metrics.jsonl, samples.jsonl, reward_curve.svg and the final adapter' },
  { key: 'max_steps', flag: 'max-steps', type: 'int', min: 1, description: 'training steps (GRPO: batches of rollouts; SFT: optimizer updates); default: from num_train_epochs' },
  { key: 'num_train_epochs', flag: 'epochs', type: 'float', ...SETTING_BOUNDS.numTrainEpochs, default: RUN_DEFAULTS.numTrainEpochs, description: 'passes over the dataset when max_steps is not set' },
  { key: 'seed', flag: 'seed', short: 's', type: 'int', min: 0, default: RUN_DEFAULTS.seed, description: 'seed of data order, sampling and adapter initialisation' },
  { key: 'save_steps', flag: 'save-steps', type: 'int', min: 0, default: GRPO_DEFAULTS.saveSteps, description: 'write checkpoint-<step>/ every N steps (0: only at the end)' },
  { key: 'save_total_limit', flag: 'save-total-limit', type: 'int', min: 1, description: 'keep only the newest N checkpoints' },
  { key: 'logging_steps', flag: 'logging-steps', type: 'int', min: 1, default: 1, description: 'print the progress line every N steps when stderr is not a terminal' },
  { key: 'sample_steps', flag: 'sample-steps', type: 'int', min: 0, default: GRPO_DEFAULTS.sampleSteps, description: 'print and log sample completions every N steps (0: never)', aliases: ['log_completions_steps'] },
  { key: 'num_completions_to_print', flag: 'samples', type: 'int', min: 1, default: GRPO_DEFAULTS.samplesPerLog, description: 'completions printed/logged each time' },
  { key: 'overwrite_output_dir', flag: 'overwrite-output-dir', type: 'bool', default: false, description: 'start a new run in an output directory that holds checkpoints of an earlier one (they are replaced as the run reaches their steps)' },
  { key: 'resume_from_checkpoint', flag: 'resume', type: 'resume', description: 'resume from a checkpoint directory, or (no value) from the newest checkpoint in --output-dir' },
  { key: 'sync', flag: 'sync', type: 'bool', default: GRPO_DEFAULTS.sync, description: 'strict on-policy: generate each batch after the previous update (default: one step off-policy, generation overlapped with training); the same as off_policy_steps 0' },
  { key: 'off_policy_steps', flag: 'off-policy-steps', type: 'int', min: 0, max: 1, defaultText: `${GRPO_DEFAULTS.offPolicySteps} (0 with --sync)`, description: 'GRPO: batches generated ahead of the update: 1 = one step off-policy (batch t+1 is sampled with the adapter before update t and generated while it runs), 0 = on-policy' },
  { key: 'mode', flag: 'mode', type: 'string', choices: ['grpo', 'sft'], default: 'grpo', description: 'grpo, or sft (supervised fine-tuning on the dataset\'s worked solutions, answer in \\boxed{})' },
  { key: 'plot', flag: 'plot', type: 'bool', default: GRPO_DEFAULTS.plot, description: 'write reward_curve.svg (sft: loss_curve.svg) at the end (--no-plot to skip)' },
  // model and engine
  { key: 'adapter', flag: 'adapter', type: 'string', description: 'start from this LoRA adapter (PEFT directory, e.g. an SFT run) instead of fresh adapters' },
  { key: 'backend', flag: 'backend', type: 'string', choices: ['cpu', 'cuda'], default: 'cpu', description: 'compute backend' },
  { key: 'threads', flag: 'threads', type: 'int', min: 0, default: 0, description: 'CPU threads (0: all; the ranks of a job on one machine split them; GRPO with a generator, shared or copy: the cores --generator-threads leaves, half of them by default)' },
  { key: 'gemm', flag: 'gemm', type: 'string', choices: ['auto', 'blas', 'builtin'], default: 'auto', description: 'CPU GEMM: auto (OpenBLAS when the build has it), blas, or builtin (batch-invariant: the same results for any batch composition, thread count or number of ranks)' },
  { key: 'weights', flag: 'weights', type: 'string', choices: ['auto', 'bf16', 'f32'], default: 'auto', description: 'CPU: dtype of the frozen base weights: auto (bf16 for a bf16 checkpoint: half the memory, AVX512-BF16 products where the CPU has them), bf16, or f32 (LoRA, gradients and optimizer stay f32)' },
  { key: 'generator', flag: 'generator', type: 'string', choices: ['shared', 'copy', 'none'], defaultText: GRPO_DEFAULTS.generator, description: "GRPO: where rollouts run while the update runs (off_policy_steps 1): shared = a second engine context on the same weights in memory (own adapters, KV cache, threads or CUDA stream), copy = a second copy of the weights (twice the weight memory), none = the policy's engine (generation and update take turns)" },
  { key: 'separate_generator', flag: 'generator-copy', type: 'bool', default: false, description: 'the same as --generator copy: load a second copy of the model for rollouts (doubles weight memory)' },
  { key: 'generator_threads', flag: 'generator-threads', type: 'int', min: 0, default: 0, description: 'CPU threads of the generator (shared or copy); 0: the cores --threads leaves, at least 1 (with --threads 0 too: half the cores each, the trainer taking the odd one)' },
  { key: 'max_batch', flag: 'max-batch', type: 'int', min: 1, description: 'sequences decoded at once (default: all completions of a step)' },
  // LoRA
  { key: 'lora_r', flag: 'lora-r', type: 'int', min: 1, default: LORA_DEFAULTS.rank, description: 'LoRA rank' },
  { key: 'lora_alpha', flag: 'lora-alpha', type: 'float', default: LORA_DEFAULTS.alpha, description: 'LoRA alpha (scale alpha / r)' },
  { key: 'lora_target_modules', flag: 'lora-target-modules', type: 'list', description: 'projections to adapt, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; default all; "all-linear" = all)' },
  { key: 'use_rslora', flag: 'rslora', type: 'bool', default: LORA_DEFAULTS.rslora, description: 'rank-stabilised LoRA: scale alpha / sqrt(r)' },
  // optimisation
  { key: 'learning_rate', flag: 'lr', type: 'float', ...SETTING_BOUNDS.learningRate, defaultText: `grpo ${showNumber(LEARNING_RATE_DEFAULTS.grpo)}, sft ${showNumber(LEARNING_RATE_DEFAULTS.sft)}`, description: 'peak learning rate', aliases: ['lr'] },
  { key: 'lr_scheduler_type', flag: 'lr-scheduler', type: 'string', choices: ['constant', 'linear', 'cosine'], default: SCHEDULE_DEFAULTS.type, description: 'learning-rate schedule after warmup' },
  { key: 'warmup_ratio', flag: 'warmup-ratio', type: 'float', ...SETTING_BOUNDS.warmupRatio, default: SCHEDULE_DEFAULTS.warmupRatio, description: 'warmup as a fraction of all updates' },
  { key: 'warmup_steps', flag: 'warmup-steps', type: 'int', min: 0, description: 'warmup updates (overrides warmup_ratio)' },
  { key: 'weight_decay', flag: 'weight-decay', type: 'float', min: 0, default: OPTIMIZER_DEFAULTS.weightDecay, description: 'AdamW weight decay' },
  { key: 'max_grad_norm', flag: 'max-grad-norm', type: 'float', min: 0, default: OPTIMIZER_DEFAULTS.maxGradNorm, description: 'clip the global gradient norm (0: off)' },
  { key: 'adam_beta1', flag: 'adam-beta1', type: 'float', ...SETTING_BOUNDS.adamBeta, default: OPTIMIZER_DEFAULTS.beta1, description: 'AdamW beta1' },
  { key: 'adam_beta2', flag: 'adam-beta2', type: 'float', ...SETTING_BOUNDS.adamBeta, default: OPTIMIZER_DEFAULTS.beta2, description: 'AdamW beta2' },
  { key: 'adam_epsilon', flag: 'adam-epsilon', type: 'float', ...SETTING_BOUNDS.adamEpsilon, default: OPTIMIZER_DEFAULTS.eps, description: 'AdamW epsilon' },
  { key: 'gradient_accumulation_steps', flag: 'grad-accum', type: 'int', min: 1, default: RUN_DEFAULTS.gradientAccumulationSteps, description: 'micro-batches per optimizer update', aliases: ['gradient_accumulation'] },
  { key: 'per_device_train_batch_size', flag: 'batch-size', type: 'int', min: 1, defaultText: `sft ${SFT_DEFAULTS.batchSize}`, description: 'sequences per micro-batch (TRL meaning; GRPO: prompts per step = batch size x grad accum / G unless prompts_per_step is set)' },
  // GRPO
  { key: 'prompts_per_step', flag: 'prompts-per-step', short: 'P', type: 'int', min: 1, defaultText: String(GRPO_DEFAULTS.promptsPerStep), description: 'GRPO: prompts per step' },
  { key: 'num_generations', flag: 'num-generations', short: 'G', type: 'int', min: SETTING_BOUNDS.numGenerations.min, default: GRPO_DEFAULTS.numGenerations, description: `GRPO: completions per prompt (group size, >= ${SETTING_BOUNDS.numGenerations.min})` },
  { key: 'max_completion_length', flag: 'max-completion-length', short: 'm', type: 'int', min: 1, default: SAMPLING_DEFAULTS.maxCompletionLength, description: 'GRPO: max new tokens per completion', aliases: ['max_new_tokens'] },
  { key: 'temperature', flag: 'temperature', short: 't', type: 'float', ...SETTING_BOUNDS.temperature, default: SAMPLING_DEFAULTS.temperature, description: 'GRPO: sampling temperature (> 0)' },
  { key: 'top_p', flag: 'top-p', type: 'float', ...SETTING_BOUNDS.topP, default: SAMPLING_DEFAULTS.topP, description: 'GRPO: nucleus sampling threshold (1: off)' },
  { key: 'top_k', flag: 'top-k', type: 'int', min: 0, default: SAMPLING_DEFAULTS.topK, description: 'GRPO: keep the k most likely tokens (0: off)' },
  { key: 'min_p', flag: 'min-p', type: 'float', ...SETTING_BOUNDS.minP, default: SAMPLING_DEFAULTS.minP, description: 'GRPO: min-p sampling threshold (0: off)' },
  { key: 'beta', flag: 'beta', type: 'float', ...SETTING_BOUNDS.beta, default: LOSS_DEFAULTS.beta, description: 'GRPO: KL weight against the base model (0: no reference pass)' },
  { key: 'kl_estimator', flag: 'kl-estimator', type: 'string', choices: KL_ESTIMATORS, default: LOSS_DEFAULTS.klEstimator, description: 'GRPO: KL estimator of the beta term: k1 (log-ratio), k2 (squared log-ratio / 2), k3 (exp(d) - d - 1)' },
  { key: 'epsilon', flag: 'epsilon', type: 'float', ...SETTING_BOUNDS.epsilon, defaultText: `${LOSS_DEFAULTS.epsilon}; sequence level ${showNumber(LOSS_DEFAULTS.sequenceEpsilon)}`, description: 'GRPO: lower clip range of the importance ratio' },
  { key: 'epsilon_high', flag: 'epsilon-high', type: 'float', ...SETTING_BOUNDS.epsilonHigh, defaultText: `epsilon; sequence level ${showNumber(LOSS_DEFAULTS.sequenceEpsilonHigh)}; cispo ${LOSS_DEFAULTS.cispoEpsilonHigh}`, description: 'GRPO: upper clip range (DAPO uses 0.28); for cispo the cap eps_max of the detached ratio' },
  { key: 'loss_type', flag: 'loss-type', type: 'string', choices: GRPO_LOSS_TYPES, default: LOSS_DEFAULTS.type, description: 'GRPO: dapo (token mean over the step), grpo (per-sequence mean), bnpo (token mean per micro-batch), dr_grpo (constant normaliser) or cispo (clipped IS-weight policy gradient)' },
  { key: 'importance_sampling_level', flag: 'importance-sampling-level', type: 'string', choices: IMPORTANCE_SAMPLING_LEVELS, default: LOSS_DEFAULTS.importanceSamplingLevel, description: 'GRPO: token ratios, or sequence (GSPO: one ratio per completion, exp of its mean log-ratio)' },
  { key: 'clip_ratio_c', flag: 'clip-ratio-c', type: 'float', ...SETTING_BOUNDS.clipRatioC, defaultText: 'off', description: "GRPO: dual-clip: bound a negative advantage's loss at -c * A (>= 1 + epsilon_high; verl uses 3; TRL's delta)", aliases: ['delta'] },
  { key: 'top_entropy_quantile', flag: 'top-entropy-quantile', type: 'float', ...SETTING_BOUNDS.topEntropyQuantile, default: LOSS_DEFAULTS.topEntropyQuantile, description: 'GRPO: train on the top-q highest-entropy completion tokens only (1: all; the 80/20 paper uses 0.2)' },
  { key: 'vllm_importance_sampling_correction', flag: 'rollout-correction', type: 'autobool', default: ROLLOUT_CORRECTION_DEFAULTS.enabled, description: "GRPO: weight the loss by the IS weight between the trainer's and the sampler's log-probs (auto: on with a CUDA generator or a generator on another backend)", aliases: ['rollout_correction'] },
  { key: 'vllm_importance_sampling_mode', flag: 'rollout-correction-mode', type: 'string', choices: ROLLOUT_CORRECTION_MODES, default: ROLLOUT_CORRECTION_DEFAULTS.mode, description: 'GRPO: token_truncate, token_mask, sequence_truncate or sequence_mask (weights outside [min, max] truncated or zeroed)', aliases: ['rollout_correction_mode'] },
  { key: 'vllm_importance_sampling_clip_min', flag: 'rollout-correction-min', type: 'float', ...SETTING_BOUNDS.correctionClip, default: ROLLOUT_CORRECTION_DEFAULTS.clipMin, description: 'GRPO: lower bound of the rollout-correction IS weight (0: none)', aliases: ['rollout_correction_min'] },
  { key: 'vllm_importance_sampling_clip_max', flag: 'rollout-correction-max', type: 'float', ...SETTING_BOUNDS.correctionClip, minOpen: true, default: ROLLOUT_CORRECTION_DEFAULTS.clipMax, description: 'GRPO: upper bound of the rollout-correction IS weight', aliases: ['vllm_importance_sampling_cap', 'rollout_correction_max'] },
  { key: 'num_iterations', flag: 'num-iterations', type: 'int', min: 1, default: GRPO_DEFAULTS.numIterations, description: 'GRPO: optimizer updates per batch of rollouts (mu)' },
  { key: 'scale_rewards', flag: 'scale-rewards', type: 'scale', default: GRPO_DEFAULTS.scaleRewards, description: 'GRPO: divide advantages by the std of the group, the batch, or none (true = group, false = none)' },
  { key: 'filter_zero_std_groups', flag: 'filter-zero-std', type: 'bool', default: GRPO_DEFAULTS.filterZeroStdGroups, description: 'GRPO: leave groups whose rewards are all equal out of the update' },
  { key: 'max_num_gen_batches', flag: 'max-num-gen-batches', type: 'int', min: 1, default: GRPO_DEFAULTS.maxNumGenBatches, description: 'GRPO: dynamic sampling: with filter_zero_std_groups, generate up to N batches of prompts per step to refill the dropped groups (1: no refill)' },
  { key: 'mask_truncated_completions', flag: 'mask-truncated', type: 'bool', default: GRPO_DEFAULTS.maskTruncatedCompletions, description: 'GRPO: leave completions cut at max_completion_length out of the loss' },
  { key: 'reward_funcs', flag: 'reward', type: 'list', description: 'GRPO: rewards, comma-separated or repeated: built-ins correctness, format, length(maxLength=N), overlong(maxLength=N), or module paths ./file.js[:export], each optionally =weight (default: correctness,format)' },
  { key: 'reward_weights', flag: 'reward-weights', type: 'numlist', description: 'GRPO: one weight per reward, comma-separated' },
  { key: 'reward_timeout', flag: 'reward-timeout', type: 'float', min: 0.001, default: GRPO_DEFAULTS.rewardTimeoutMs / 1000, description: 'GRPO: seconds one reward may take on one batch before it gives 0 (with a warning)' },
  { key: 'stop', flag: 'stop', type: 'list', repeatOnly: true, description: 'GRPO: stop string (repeat the flag for several)' },
  { key: 'tools', flag: 'tools', type: 'string', description: 'GRPO: a JS module of tools the model may call (export `tools` = [{name, description, parameters, fn}], or functions with a `schema`): multi-turn rollouts' },
  { key: 'environment', flag: 'environment', type: 'string', description: 'GRPO: a JS module exporting `environment` = (example) => ({ reset?(), step(text) -> {messages?, reward?, done} }): multi-turn rollouts where the world answers' },
  { key: 'environment_weight', flag: 'environment-weight', type: 'float', default: 1, description: "GRPO: weight of the environment's reward in the total" },
  { key: 'max_tool_calling_iterations', flag: 'max-tool-calling-iterations', type: 'int', min: 1, defaultText: 'no limit but max_completion_length', description: 'GRPO: tool calls per completion at most' },
  { key: 'tool_timeout', flag: 'tool-timeout', type: 'float', min: 0.001, default: GRPO_DEFAULTS.toolTimeoutMs / 1000, description: 'GRPO: seconds one tool call may take before the model gets an error instead' },
  // SFT
  { key: 'max_length', flag: 'max-length', type: 'int', min: 2, description: 'SFT: longest prompt + completion in tokens (default: the model context)', aliases: ['max_seq_length'] },
];

const BY_KEY = new Map<string, Setting>();
for (const s of TRAIN_SETTINGS) {
  BY_KEY.set(s.key, s);
  for (const a of s.aliases ?? []) BY_KEY.set(a, s);
}

export type SettingValues = Record<string, unknown>;

function bad(where: string, message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', `${where}: ${message}`);
}

/** Checks and converts one value (from a flag's text or a config file's value). */
export function coerceSetting(s: Setting, value: unknown, where: string): unknown {
  const range = (n: number) => {
    if (!inBounds(n, { min: s.min, minOpen: s.minOpen })) throw bad(where, `must be ${s.minOpen ? '>' : '>='} ${s.min}, got ${n}`);
    if (!inBounds(n, { max: s.max, maxOpen: s.maxOpen })) throw bad(where, `must be ${s.maxOpen ? '<' : '<='} ${s.max}, got ${n}`);
    return n;
  };
  switch (s.type) {
    case 'int': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw bad(where, `must be an integer, got ${JSON.stringify(value)}`);
      return range(n);
    }
    case 'float': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad(where, `must be a number, got ${JSON.stringify(value)}`);
      return range(n);
    }
    case 'autobool':
      if (value === true || value === 'true' || value === 'on') return true;
      if (value === false || value === 'false' || value === 'off') return false;
      if (value === 'auto') return 'auto';
      throw bad(where, `must be auto, on or off (or true / false), got ${JSON.stringify(value)}`);
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true') return true;
      if (value === 'false') return false;
      throw bad(where, `must be true or false, got ${JSON.stringify(value)}`);
    case 'string': {
      if (typeof value !== 'string' && typeof value !== 'number') throw bad(where, `must be a string, got ${JSON.stringify(value)}`);
      const v = String(value);
      if (s.choices && !s.choices.includes(v)) throw bad(where, `must be one of ${s.choices.join(', ')}, got '${v}'`);
      return v;
    }
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? (s.repeatOnly ? [value] : splitList(value)) : undefined;
      if (!items || items.some((x) => typeof x !== 'string' || x === '')) throw bad(where, `must be a list of strings (or a comma-separated string), got ${JSON.stringify(value)}`);
      return s.repeatOnly ? (items as string[]) : (items as string[]).map((x) => x.trim());
    }
    case 'numlist': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? splitList(value).map(Number) : typeof value === 'number' ? [value] : undefined;
      if (!items || items.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw bad(where, `must be a list of numbers, got ${JSON.stringify(value)}`);
      return items;
    }
    case 'scale':
      if (value === true || value === 'true' || value === 'group') return 'group';
      if (value === false || value === 'false' || value === 'none') return 'none';
      if (value === 'batch') return 'batch';
      throw bad(where, `must be group, batch or none (or true / false), got ${JSON.stringify(value)}`);
    case 'resume':
      if (value === true || value === 'true') return true;
      if (value === false || value === 'false' || value === null) return false;
      if (typeof value === 'string' && value !== '') return value;
      throw bad(where, `must be true or a checkpoint directory, got ${JSON.stringify(value)}`);
  }
}

/** Splits "a,b" lists, keeping commas inside parentheses (reward options like "overlong(maxLength=512,buffer=64)"). */
export function splitList(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

/** Reads a JSON or YAML config file into settings (unknown keys are reported through `warn` and ignored). */
export function readConfigFile(path: string, warn: (message: string) => void): SettingValues {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `config file not found: ${path}`);
  const text = readFileSync(path, 'utf8');
  let raw: unknown;
  try {
    raw = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `config file ${path} does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new HayateError('ERR_INVALID_ARGUMENT', `config file ${path} must hold a mapping of settings (key: value)`);
  const out: SettingValues = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const s = BY_KEY.get(key);
    if (!s) {
      warn(`config file ${path}: ignoring unknown key '${key}'`);
      continue;
    }
    if (value === null || value === undefined) continue;
    out[s.key] = coerceSetting(s, value, `config file ${path}: ${key}`);
  }
  return out;
}

function optionFor(s: Setting): Option {
  const short = s.short ? `-${s.short}, ` : '';
  let help = s.description;
  if (s.key !== s.flag.replace(/-/g, '_')) help += ` [config: ${s.key}]`;
  else help += ' [config: same name]';
  if (s.type === 'bool') {
    if (s.default === true) return new Option(`--no-${s.flag}`, help);
    return new Option(`${short}--${s.flag}`, help);
  }
  const arg = s.type === 'resume' ? '[dir]' : s.type === 'list' || s.type === 'numlist' ? '<list>' : s.type === 'int' ? '<n>' : s.type === 'float' ? '<x>' : s.type === 'scale' ? '<group|batch|none>' : s.type === 'autobool' ? '<auto|on|off>' : s.choices ? '<name>' : '<text>';
  const opt = new Option(`${short}--${s.flag} ${arg}`, help);
  if (s.choices) opt.choices(s.choices as string[]);
  if (s.type === 'list') {
    // repeatable: --reward a --reward b, or --reward a,b
    opt.argParser((v: string, prev: unknown) => [...((prev as string[] | undefined) ?? []), ...(s.repeatOnly ? [v] : splitList(v))]);
  }
  return opt;
}

/** How --help shows a setting's default (bools show theirs through the flag's --no- form), or undefined. */
function helpDefault(s: Setting): string | undefined {
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.default === undefined || s.type === 'bool') return undefined;
  return typeof s.default === 'string' ? s.default : JSON.stringify(s.default);
}

/** Adds every setting's flag to `cmd` (no commander defaults: defaults are applied after merging the config). */
export function addSettingOptions(cmd: Command): Command {
  for (const s of TRAIN_SETTINGS) {
    const opt = optionFor(s);
    const shown = helpDefault(s);
    if (shown !== undefined) opt.description += ` (default: ${shown})`;
    cmd.addOption(opt);
  }
  return cmd;
}

function attributeName(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Merges flags (only those given on the command line) over the config file over the defaults. */
export function mergeSettings(cmd: Command, config: SettingValues): SettingValues {
  const opts = cmd.opts() as Record<string, unknown>;
  const out: SettingValues = {};
  for (const s of TRAIN_SETTINGS) {
    const attr = attributeName(s.flag);
    const source = cmd.getOptionValueSource(attr);
    let v: unknown;
    if (source === 'cli' || source === 'env') v = coerceSetting(s, opts[attr], `--${s.type === 'bool' && s.default === true ? `no-${s.flag}` : s.flag}`);
    else if (config[s.key] !== undefined) v = config[s.key];
    else v = s.default;
    if (v !== undefined) out[s.key] = v;
  }
  return out;
}
