// SftTrainer: supervised fine-tuning of a model's LoRA adapters (next-token cross-entropy on the
// completion tokens), on the same native machinery as GRPO. Sequences are drawn in a seeded order, one
// optimizer update per batchSize x gradientAccumulationSteps sequences, for a number of epochs or updates.
//
//   const sft = new SftTrainer({ model, data: examples, lora: { rank: 16, alpha: 32 }, learningRate: 1e-3, epochs: 2 });
//   sft.on('step', (e) => console.log(e.step, e.loss));
//   const { losses } = await sft.train({ signal });
import { saveAdapter } from '../adapter.js';
import { BatchSampler } from '../data/order.js';
import { singleProcessWorld, type World } from '../distributed/world.js';
import { AbortError, HayateError } from '../errors.js';
import type { LoraOptions, Model } from '../model.js';
import { TrainerCore, type OptimizerOptions } from '../trainer-core.js';
import { LEARNING_RATE_DEFAULTS, RUN_DEFAULTS, SETTING_BOUNDS, SFT_DEFAULTS } from '../training-defaults.js';
import { TypedEmitter } from './events.js';
import { adaptersToAttach } from './fresh-adapters.js';
import { resolveSchedule, type ScheduleOptions } from './schedule.js';
import { encodeSftExamples, type EncodedSftExample, type SftExample } from './sft-examples.js';
import { checkInBounds, checkInt, invalid } from './validate.js';

export interface SftTrainerOptions {
  /** A loaded model; training changes its LoRA adapters in place. */
  model: Model;
  /** Dataset examples (target: worked solution + \boxed{answer}), {prompt, completion} texts or token ids. */
  data: readonly SftExample[];
  /** Attach fresh adapters with these options; omit to train the adapters already attached (default when none: LORA_DEFAULTS, rank 32, alpha 64). */
  lora?: LoraOptions;
  /** Peak learning rate (default LEARNING_RATE_DEFAULTS.sft, 1e-4). */
  learningRate?: number;
  /** AdamW settings (its lr is replaced by learningRate and the schedule); defaults: OPTIMIZER_DEFAULTS. */
  optimizer?: Omit<OptimizerOptions, 'lr'>;
  schedule?: ScheduleOptions;
  /** Sequences per micro-batch (one forward/backward) (default 8). */
  batchSize?: number;
  /** Micro-batches per optimizer update (default 1). */
  gradientAccumulationSteps?: number;
  /** Passes over the data (default 1); ignored when maxSteps is set. */
  epochs?: number;
  /** Optimizer updates to run (default: enough for `epochs`). */
  maxSteps?: number;
  /** Seed of the data order and of fresh adapters' initialisation (default 0). */
  seed?: number;
  /** Shuffle the data each epoch (default true). */
  shuffle?: boolean;
  /** Append EOS to text completions (default true). */
  appendEos?: boolean;
  /** Longest prompt + completion in tokens (default: the model's context); longer completions are cut. */
  maxLength?: number;
  /** Write the trained adapter (PEFT format) here at the end. */
  outputDir?: string;
  /**
   * The data-parallel job this process is a rank of (`await initWorld()`; default: this process alone).
   * batchSize is per rank (TRL's per_device_train_batch_size): an update covers batchSize x
   * gradientAccumulationSteps x ranks sequences; rank 0 alone writes the adapter.
   */
  world?: World;
}

export interface SftStepEvent {
  /** Updates done (1-based). */
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  /** Completion tokens of this update. */
  tokens: number;
  /** False when the update was skipped (non-finite loss or gradient). */
  applied: boolean;
  seconds: number;
}

export interface SftResult {
  steps: number;
  /** Loss of each update, in order. */
  losses: number[];
  /** Completion tokens trained on. */
  tokens: number;
  /** Updates skipped because of non-finite values. */
  skippedSteps: number;
  /** Completions cut to fit maxLength. */
  truncated: number;
  seconds: number;
  /** Where the adapter was written (outputDir), if anywhere. */
  adapterDir?: string;
}

export type SftTrainerEvents = { step: [SftStepEvent] };

export class SftTrainer extends TypedEmitter<SftTrainerEvents> {
  readonly options: Readonly<SftTrainerOptions>;
  private running = false;

  constructor(options: SftTrainerOptions) {
    super();
    if (!options || typeof options !== 'object') throw invalid('SftTrainer needs an options object');
    if (!options.model) throw invalid('SftTrainer: options.model is required (a loaded Model)');
    if (!Array.isArray(options.data) || options.data.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'SftTrainer: the dataset is empty (options.data has no examples)');
    checkInBounds('learningRate', options.learningRate, SETTING_BOUNDS.learningRate);
    checkInt('batchSize', options.batchSize, 1);
    checkInt('gradientAccumulationSteps', options.gradientAccumulationSteps, 1);
    checkInBounds('epochs', options.epochs, SETTING_BOUNDS.numTrainEpochs);
    checkInt('maxSteps', options.maxSteps, 1);
    checkInt('seed', options.seed, 0);
    this.options = { ...options };
  }

  /** Updates the run makes. */
  get totalSteps(): number {
    const o = this.options;
    if (o.maxSteps !== undefined) return o.maxSteps;
    const perStep = (o.batchSize ?? SFT_DEFAULTS.batchSize) * (o.gradientAccumulationSteps ?? RUN_DEFAULTS.gradientAccumulationSteps) * (o.world?.size ?? 1);
    return Math.max(1, Math.ceil((o.data.length * (o.epochs ?? RUN_DEFAULTS.numTrainEpochs)) / perStep));
  }

  /** Runs the training; rejects with AbortError when `signal` aborts (updates done so far stay applied). */
  async train(options: { signal?: AbortSignal } = {}): Promise<SftResult> {
    if (this.running) throw new HayateError('ERR_INVALID_ARGUMENT', 'SftTrainer.train is already running');
    this.running = true;
    try {
      return await this.run(options.signal);
    } finally {
      this.running = false;
    }
  }

  private async run(signal: AbortSignal | undefined): Promise<SftResult> {
    const o = this.options;
    const started = performance.now();
    if (signal?.aborted) throw new AbortError('SFT training was aborted before it started');
    const { model } = o;
    const seed = o.seed ?? RUN_DEFAULTS.seed;
    const { sequences, truncated } = encodeSftExamples(model, o.data, { appendEos: o.appendEos ?? SFT_DEFAULTS.appendEos, maxLength: o.maxLength });
    const microBatch = o.batchSize ?? SFT_DEFAULTS.batchSize;
    const accumulation = o.gradientAccumulationSteps ?? RUN_DEFAULTS.gradientAccumulationSteps;
    const totalSteps = this.totalSteps;
    const lr = o.learningRate ?? LEARNING_RATE_DEFAULTS.sft;
    const trainer = await TrainerCore.create(model, {
      lora: adaptersToAttach(model, o.lora, seed),
      optimizer: { ...o.optimizer, lr },
      schedule: resolveSchedule(lr, totalSteps, o.schedule),
    });
    const world = o.world ?? singleProcessWorld();
    // every rank walks the same order and takes its slice of each update's global batch
    const sampler = new BatchSampler(sequences.length, { batchSize: microBatch * accumulation, seed, shuffle: o.shuffle ?? SFT_DEFAULTS.shuffle, rank: world.rank, worldSize: world.size });
    const losses: number[] = [];
    let tokens = 0;
    try {
      for (let step = 0; step < totalSteps; step++) {
        if (signal?.aborted) throw new AbortError('SFT training was aborted');
        const stepStarted = performance.now();
        const epoch = sampler.state().epoch;
        const batch: EncodedSftExample[] = sampler.next().map((i) => sequences[i]);
        const localTokens = batch.reduce((n, s) => n + s.completion.length, 0);
        // the loss is a token mean over the whole update: every rank divides by the global counts
        const [stepTokens, stepSequences] = world.size === 1 ? [localTokens, batch.length] : await world.allReduceSumNumbers([localTokens, batch.length]);
        await trainer.zeroGrad();
        let loss = 0;
        for (let m = 0; m < accumulation; m++) {
          const micro = batch.slice(m * microBatch, (m + 1) * microBatch);
          if (micro.length === 0) continue;
          const s = await trainer.forwardBackward(micro, { type: 'sft', tokensInStep: stepTokens, sequencesInStep: stepSequences }, { signal });
          loss += s.loss;
        }
        if (world.size > 1) {
          await trainer.allReduceGradients();
          [loss] = await world.allReduceSumNumbers([loss]);
        }
        const r = await trainer.step();
        losses.push(loss);
        tokens += stepTokens;
        this.safeEmit('step', {
          step: step + 1,
          totalSteps,
          epoch,
          loss,
          learningRate: r.lr,
          gradNorm: r.gradNorm,
          tokens: stepTokens,
          applied: r.applied,
          seconds: (performance.now() - stepStarted) / 1000,
        });
      }
      const result: SftResult = { steps: totalSteps, losses, tokens, skippedSteps: trainer.skippedSteps, truncated, seconds: 0 };
      if (o.outputDir !== undefined && world.isMain) {
        await saveAdapter(model, o.outputDir);
        result.adapterDir = o.outputDir;
      }
      result.seconds = (performance.now() - started) / 1000;
      return result;
    } finally {
      await trainer.dispose();
    }
  }
}
