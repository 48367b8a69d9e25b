// hayate's library API. The map of the code (layers, one GRPO step end to end) is docs/architecture.md.
import { native, type NativeBuildInfo } from './native.js';

export { Model, LORA_TARGETS } from './model.js';
export type {
  BackendKind,
  Completion,
  GenerateOptions,
  GenerateResult,
  LoraInfo,
  LoraOptions,
  LoraTarget,
  LoraTensors,
  ModelLoadOptions,
  PromptInput,
  PromptResult,
  SamplingOptions,
  ScoredSequence,
  Turn,
  TurnAnswer,
} from './model.js';
export { TrainerCore, LOSS_TYPES, IMPORTANCE_SAMPLING_LEVELS, KL_ESTIMATORS, ROLLOUT_CORRECTION_MODES, packBatch } from './trainer-core.js';
export type { ForwardBackwardStats, ImportanceSamplingLevel, KlEstimator, LossOptions, LossType, OptimizerOptions, RolloutCorrectionMode, StepStats, TrainerCoreOptions, TrainSequence } from './trainer-core.js';
export { learningRate } from './lr-schedule.js';
export type { LrScheduleOptions, LrScheduleType } from './lr-schedule.js';
export { loadAdapter, readAdapter, saveAdapter, saveMergedModel, peftTensorName, parsePeftTensorName, buildAdapterConfig } from './adapter.js';
export type { AdapterSaveOptions, LoadedAdapter } from './adapter.js';
export { HfTokenizer } from './tokenizer.js';
export type { ChatMessage, ChatTemplateOptions } from './tokenizer.js';
export { initModel, MODEL_SHAPES } from './init-model.js';
export type { InitModelOptions, InitModelResult, ModelShapeName } from './init-model.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
export { AbortError, ContextOverflowError, HayateError, ModelFormatError } from './errors.js';
export type { HayateErrorCode } from './errors.js';
export { native } from './native.js';
export * from './data/index.js';
export * from './rewards/index.js';
export * from './eval/index.js';
export * from './metrics/index.js';
export * from './train/index.js';
export * from './demo/index.js';
export type { NativeBuildInfo, NativeGenerationStats, NativeProgress } from './native.js';

/** Facts about this build: CUDA compiled in, CUDA devices, BLAS, hardware threads. */
export function buildInfo(): NativeBuildInfo {
  return native().buildInfo();
}
export * from './distributed/index.js';
export * from './tools/index.js';
export * from './export/index.js';
