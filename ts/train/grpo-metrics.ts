// The metrics phase of a GRPO step: the metrics.jsonl line (TRL's names, in a fixed key order) and the
// sample completions shown every sampleSteps steps.
import { METRIC } from '../metrics/names.js';
import type { MetricsRecord } from '../metrics/writer.js';
import type { ResolvedGrpoOptions } from './grpo-options.js';
import type { GrpoUpdateStats } from './grpo-update.js';
import { modelTokenCount, type Rollout } from './rollout.js';

export interface GrpoSample {
  prompt: string;
  completion: string;
  answer: string;
  /** Weighted total reward. */
  reward: number;
  /** Each reward's value. */
  rewards: Record<string, number>;
  advantage: number;
  tokens: number;
  finishReason: 'stop' | 'length';
}

/** Prompt + completion tokens of a rollout (TRL's num_tokens counts both). */
export function rolloutTokenCount(rollout: Rollout, numGenerations: number): number {
  return rollout.promptTokens.reduce((n, p) => n + p.length, 0) * numGenerations + rollout.generatedTokens;
}

/** The metrics line of completed step `step`. */
export function grpoStepMetrics(args: {
  step: number;
  epoch: number;
  rollout: Rollout;
  update: GrpoUpdateStats;
  /** Which optional metrics apply (KL with beta > 0, cispo, dual-clip, entropy mask, dynamic sampling). */
  config: Pick<ResolvedGrpoOptions, 'beta' | 'lossType' | 'clipRatioC' | 'topEntropyQuantile' | 'filterZeroStdGroups' | 'numGenerations'>;
  /** Tokens processed so far, this step's included. */
  numTokens: number;
  trainingSeconds: number;
  /** performance.now() when the step started. */
  stepStarted: number;
  /** Optimizer updates applied to the adapter the step's batch was sampled with. */
  policyVersion?: number;
}): MetricsRecord {
  const { rollout, update: train, config: c } = args;
  const comps = rollout.completions;
  // lengths count the model's tokens (a multi-turn completion also holds tool and environment tokens)
  const lengths = comps.map(modelTokenCount);
  const terminated = comps.filter((x) => x.finishReason !== 'length').map(modelTokenCount);
  const m: MetricsRecord = {
    [METRIC.step]: args.step,
    [METRIC.epoch]: args.epoch,
    [METRIC.reward]: rollout.scores.metrics.reward,
    [METRIC.rewardStd]: rollout.adv.rewardStd,
  };
  for (const name of rollout.scores.names) {
    m[`rewards/${name}/mean`] = rollout.scores.metrics[`rewards/${name}/mean`];
    m[`rewards/${name}/std`] = rollout.scores.metrics[`rewards/${name}/std`];
  }
  const stepSeconds = (performance.now() - args.stepStarted) / 1000;
  Object.assign(m, {
    [METRIC.completionsMeanLength]: lengths.reduce((a, b) => a + b, 0) / lengths.length,
    [METRIC.completionsMinLength]: Math.min(...lengths),
    [METRIC.completionsMaxLength]: Math.max(...lengths),
    [METRIC.completionsClippedRatio]: (comps.length - terminated.length) / comps.length,
    [METRIC.completionsMeanTerminatedLength]: terminated.length > 0 ? terminated.reduce((a, b) => a + b, 0) / terminated.length : 0,
    [METRIC.completionsMinTerminatedLength]: terminated.length > 0 ? Math.min(...terminated) : 0,
    [METRIC.completionsMaxTerminatedLength]: terminated.length > 0 ? Math.max(...terminated) : 0,
    [METRIC.kl]: c.beta > 0 ? train.kl : null,
    [METRIC.entropy]: train.entropy,
    [METRIC.clipRatioLowMean]: train.clipLow,
    [METRIC.clipRatioLowMin]: train.clipLowMin,
    [METRIC.clipRatioHighMean]: train.clipHigh,
    [METRIC.clipRatioHighMax]: train.clipHighMax,
    [METRIC.clipRatioRegionMean]: train.clipRegion,
  });
  if (c.clipRatioC > 0) m[METRIC.clipRatioDualMean] = train.dualClip;
  if (c.lossType === 'cispo') m[METRIC.cispoClipRatio] = train.cispoClip;
  if (c.topEntropyQuantile < 1) m[METRIC.entropyKeptRatio] = train.entropyKept;
  if (train.sampling) {
    m[METRIC.samplingLogpDiffMean] = train.sampling.logpDiffMean;
    m[METRIC.samplingLogpDiffMax] = train.sampling.logpDiffMax;
    if (train.sampling.isRatioMean !== undefined) {
      m[METRIC.isRatioMin] = train.sampling.isRatioMin as number;
      m[METRIC.isRatioMean] = train.sampling.isRatioMean;
      m[METRIC.isRatioMax] = train.sampling.isRatioMax as number;
    }
  }
  if (rollout.episodes) {
    const e = rollout.episodes;
    const calls = e.reduce((n, x) => n + x.toolCalls, 0);
    m[METRIC.toolCallFrequency] = calls / e.length;
    m[METRIC.toolFailureFrequency] = calls > 0 ? e.reduce((n, x) => n + x.toolFailures, 0) / calls : 0;
    m[METRIC.turnsMean] = e.reduce((n, x) => n + x.turns, 0) / e.length;
    m[METRIC.toolSeconds] = e.reduce((n, x) => n + x.toolSeconds, 0);
  }
  m[METRIC.fracRewardZeroStd] = rollout.adv.fracZeroStd;
  if (c.filterZeroStdGroups) {
    const generated = rollout.adv.zeroStd.length;
    const dropped = rollout.adv.zeroStd.filter(Boolean).length;
    m[METRIC.genBatches] = rollout.genBatches;
    m[METRIC.groupsGenerated] = generated;
    m[METRIC.groupsKept] = rollout.trainGroups?.length ?? generated - dropped;
    m[METRIC.groupsDropped] = dropped;
  }
  Object.assign(m, {
    [METRIC.loss]: train.loss,
    [METRIC.learningRate]: train.lr,
    [METRIC.gradNorm]: train.gradNorm,
    [METRIC.numTokens]: args.numTokens,
    trained_sequences: train.sequences,
    skipped_updates: train.skipped,
    reward_warnings: rollout.scores.warnings.length,
    [METRIC.generationSeconds]: rollout.generationSeconds,
    [METRIC.rewardSeconds]: rollout.rewardSeconds,
    [METRIC.trainingSeconds]: args.trainingSeconds,
    [METRIC.stepTime]: stepSeconds,
    'timing/step_s': stepSeconds,
    [METRIC.tokensPerSecond]: rollout.generationSeconds > 0 ? rollout.generatedTokens / rollout.generationSeconds : 0,
  });
  if (args.policyVersion !== undefined) m[METRIC.policyVersion] = args.policyVersion;
  return m;
}

function promptText(p: unknown): string {
  if (typeof p === 'string') return p;
  const messages = (p as { messages?: { content: string }[] })?.messages;
  return messages && messages.length > 0 ? messages[messages.length - 1].content : '';
}

/** Whether completed step `step` shows samples: every sampleSteps steps, and after the first. */
export function isSampleStep(step: number, sampleSteps: number): boolean {
  return sampleSteps > 0 && (step % sampleSteps === 0 || step === 1);
}

/** The first `count` completions of a rollout, with their prompts, rewards and advantages. */
export function grpoSamples(rollout: Rollout, count: number, numGenerations: number): GrpoSample[] {
  return rollout.completions.slice(0, count).map((x, i) => ({
    prompt: promptText(rollout.examples[Math.floor(i / numGenerations)].prompt),
    completion: x.text,
    answer: rollout.examples[Math.floor(i / numGenerations)].answer,
    reward: rollout.scores.total[i],
    rewards: Object.fromEntries(rollout.scores.names.map((n) => [n, rollout.scores.values[n][i]])),
    advantage: rollout.adv.advantages[i],
    tokens: modelTokenCount(x),
    finishReason: x.finishReason,
  }));
}
