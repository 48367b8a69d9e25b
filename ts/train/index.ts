// Training loops: SFT and GRPO over TrainerCore, with events, checkpoints and metrics.
export { SftTrainer } from './sft-trainer.js';
export type { SftResult, SftStepEvent, SftTrainerEvents, SftTrainerOptions } from './sft-trainer.js';
export { encodeSftExamples, sftTargetText } from './sft-examples.js';
export type { EncodeSftOptions, EncodedSftExample, SftExample, SftTextExample, SftTokenExample } from './sft-examples.js';
export { resolveSchedule } from './schedule.js';
export type { ScheduleOptions } from './schedule.js';
export { GrpoTrainer, GRPO_STATE_FORMAT } from './grpo-trainer.js';
export type { GrpoCheckpointEvent, GrpoResult, GrpoSample, GrpoSampleEvent, GrpoStepEvent, GrpoTrainerEvents, GrpoTrainerState } from './grpo-trainer.js';
export { resolveGrpoOptions } from './grpo-options.js';
export type { GrpoLossType, GrpoReward, GrpoTrainerOptions, ResolvedGrpoOptions } from './grpo-options.js';
export { groupAdvantages, normalizeScaleRewards } from './advantages.js';
export type { GroupAdvantages, ScaleRewards } from './advantages.js';
export { rolloutSeed } from './rollout.js';
export type { Rollout, RolloutSampling } from './rollout.js';
export { checkpointName, latestCheckpoint, listCheckpoints, writeCheckpointDir } from './checkpoint.js';
export { TypedEmitter } from './events.js';
