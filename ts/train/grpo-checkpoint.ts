// A GRPO run's checkpoints: what trainer_state.json holds, finding and validating the checkpoint a run
// resumes from, and writing checkpoint-<step>/ (adapter, optimizer state, the pending batch's rollout
// adapter, trainer state) through checkpoint.ts's atomic directory writer.
import { join } from 'node:path';
import { saveAdapter } from '../adapter.js';
import type { SamplerState } from '../data/order.js';
import { HayateError } from '../errors.js';
import type { LoraInfo, LoraTensors, Model } from '../model.js';
import type { TrainerCore } from '../trainer-core.js';
import {
  OPTIMIZER_FILE,
  ROLLOUT_ADAPTER_FILE,
  TRAINER_STATE_FILE,
  latestCheckpoint,
  readJsonFile,
  readLoraTensors,
  writeCheckpointDir,
  writeJsonFile,
  writeLoraTensors,
} from './checkpoint.js';

export const GRPO_STATE_FORMAT = 'hayate-grpo-trainer-state';

/** What trainer_state.json of a GRPO checkpoint holds. */
export interface GrpoTrainerState {
  format: typeof GRPO_STATE_FORMAT;
  version: 1;
  /** Steps completed. */
  step: number;
  totalSteps: number;
  /** Optimizer updates applied (numIterations per step, minus skipped ones). */
  updates: number;
  seed: number;
  /** The sampler positioned at the next step's batch. */
  sampler: SamplerState;
  /** Off-policy run: the next batch is sampled with rollout_adapter.safetensors, not the checkpoint's adapter. */
  pendingRollout: boolean;
  /** With pendingRollout: the policy version (optimizer updates) of that adapter (absent in older checkpoints). */
  rolloutPolicyVersion?: number;
  datasetSize: number;
  promptsPerStep: number;
  numGenerations: number;
  /** Prompt + completion tokens processed so far (TRL num_tokens). */
  numTokens: number;
  sync: boolean;
  /** Ranks of the data-parallel job that wrote it (absent: 1). The global batch is promptsPerStep either way. */
  worldSize?: number;
  savedAt: string;
}

/** A checkpoint to resume from: its directory and trainer state. */
export interface ResumePoint {
  dir: string;
  state: GrpoTrainerState;
}

/** The run shape a checkpoint must match to be resumed (same data, batch shape and seed). */
export interface RunShape {
  datasetSize: number;
  promptsPerStep: number;
  numGenerations: number;
  seed: number;
}

/**
 * The checkpoint `resumeFrom` names (a directory, or `true` for the newest in outputDir), with its state
 * checked against this run's shape; undefined when the run starts fresh.
 */
export function findResumePoint(resumeFrom: string | boolean | undefined, outputDir: string | undefined, shape: RunShape): ResumePoint | undefined {
  let dir: string | undefined;
  if (typeof resumeFrom === 'string') dir = resumeFrom;
  else if (resumeFrom === true) {
    dir = latestCheckpoint(outputDir as string);
    if (!dir) throw new HayateError('ERR_NOT_FOUND', `no checkpoint-<step> directory with ${TRAINER_STATE_FILE} in ${outputDir} to resume from`);
  }
  if (dir === undefined) return undefined;
  const state = readJsonFile<GrpoTrainerState>(join(dir, TRAINER_STATE_FILE), 'trainer state');
  if (state.format !== GRPO_STATE_FORMAT || !Number.isInteger(state.step)) throw new HayateError('ERR_INVALID_ARGUMENT', `${dir}/${TRAINER_STATE_FILE} is not a hayate GRPO trainer state`);
  const mismatch: string[] = [];
  if (state.datasetSize !== shape.datasetSize) mismatch.push(`dataset size ${state.datasetSize} -> ${shape.datasetSize}`);
  if (state.promptsPerStep !== shape.promptsPerStep) mismatch.push(`promptsPerStep ${state.promptsPerStep} -> ${shape.promptsPerStep}`);
  if (state.numGenerations !== shape.numGenerations) mismatch.push(`numGenerations ${state.numGenerations} -> ${shape.numGenerations}`);
  if (state.seed !== shape.seed) mismatch.push(`seed ${state.seed} -> ${shape.seed}`);
  if (mismatch.length > 0) throw new HayateError('ERR_INVALID_ARGUMENT', `cannot resume from ${dir}: the run changed (${mismatch.join(', ')}); resume with the same data, batch shape and seed`);
  return { dir, state };
}

/** The adapter the resumed run's first batch is sampled with (off-policy checkpoints hold one). */
export function readRolloutAdapter(resume: ResumePoint, info: LoraInfo): LoraTensors[] {
  return readLoraTensors(join(resume.dir, ROLLOUT_ADAPTER_FILE), info);
}

/** Writes checkpoint-<state.step>/ under outputDir atomically; returns its directory. */
export async function writeGrpoCheckpoint(args: {
  outputDir: string;
  model: Model;
  trainer: TrainerCore;
  state: GrpoTrainerState;
  rolloutAdapter?: LoraTensors[];
}): Promise<string> {
  const { model, trainer, state, rolloutAdapter } = args;
  const info = model.lora;
  if (!info) throw new HayateError('ERR_INTERNAL', 'the model lost its adapters');
  return writeCheckpointDir(args.outputDir, state.step, async (tmp) => {
    await saveAdapter(model, tmp);
    await trainer.saveState(join(tmp, OPTIMIZER_FILE));
    if (rolloutAdapter) writeLoraTensors(join(tmp, ROLLOUT_ADAPTER_FILE), info, rolloutAdapter);
    writeJsonFile(join(tmp, TRAINER_STATE_FILE), state); // last: its presence marks a complete checkpoint
  });
}
