// The README's `hayate train` settings table is generated from the settings definition (train-config.ts,
// whose defaults come from training-defaults.ts): this fails when README.md was not regenerated after a
// setting changed (run `npm run docs:settings`), and checks that the trainers and the CLI share defaults.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTINGS_TABLE_BEGIN, SETTINGS_TABLE_END, replaceSettingsTable, settingsTable } from '../ts/cli/settings-doc.js';
import { TRAIN_SETTINGS } from '../ts/cli/train-config.js';
import { resolveGrpoOptions } from '../ts/train/grpo-options.js';
import type { Example } from '../ts/data/dataset.js';
import type { Model } from '../ts/model.js';
import { GRPO_DEFAULTS, LEARNING_RATE_DEFAULTS, LORA_DEFAULTS, LOSS_DEFAULTS, ROLLOUT_CORRECTION_DEFAULTS, SAMPLING_DEFAULTS, SETTING_BOUNDS, formatBounds, inBounds } from '../ts/training-defaults.js';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
// resolveGrpoOptions only validates and resolves: no model work, so a stand-in model will do.
const model = {} as Model;
const dataset: Example[] = [{ index: 0, prompt: 'q', question: 'q', answer: '1', raw: {} }];

describe('README settings table', () => {
  it('is what the settings definition generates (run `npm run docs:settings` after changing a setting)', () => {
    expect(readme).toContain(SETTINGS_TABLE_BEGIN);
    expect(readme).toContain(SETTINGS_TABLE_END);
    expect(replaceSettingsTable(readme)).toBe(readme);
  });

  it('has one row per setting, with the defaults of training-defaults.ts', () => {
    const rows = settingsTable().split('\n').slice(2);
    expect(rows).toHaveLength(TRAIN_SETTINGS.length);
    const row = (key: string) => rows.find((r) => r.includes(`| \`${key}`)) as string;
    expect(row('lora_r')).toContain(`| ${LORA_DEFAULTS.rank} |`);
    expect(row('lora_alpha')).toContain(`| ${LORA_DEFAULTS.alpha} |`);
    expect(row('learning_rate')).toContain('| grpo 5e-6, sft 1e-4 |');
    expect(row('epsilon')).toContain(`| ${LOSS_DEFAULTS.epsilon}; sequence level 3e-4 |`);
    expect(row('top_entropy_quantile')).toContain(`| ${LOSS_DEFAULTS.topEntropyQuantile} |`);
    expect(row('vllm_importance_sampling_mode')).toContain(`| ${ROLLOUT_CORRECTION_DEFAULTS.mode} |`);
    expect(row('num_completions_to_print')).toContain(`| ${GRPO_DEFAULTS.samplesPerLog} |`);
  });

  it('replaces only the section between the markers', () => {
    const doc = `intro\n${SETTINGS_TABLE_BEGIN}\nstale\n${SETTINGS_TABLE_END}\noutro\n`;
    expect(replaceSettingsTable(doc, 'TABLE')).toBe(`intro\n${SETTINGS_TABLE_BEGIN}\nTABLE\n${SETTINGS_TABLE_END}\noutro\n`);
    expect(() => replaceSettingsTable('no markers')).toThrow(/markers/);
  });
});

describe('one default per setting', () => {
  it('the CLI defaults are the library defaults', () => {
    const byKey = new Map(TRAIN_SETTINGS.map((s) => [s.key, s]));
    const c = resolveGrpoOptions({ model, dataset });
    expect(byKey.get('num_generations')?.default).toBe(c.numGenerations);
    expect(byKey.get('max_completion_length')?.default).toBe(c.sampling.maxCompletionLength);
    expect(byKey.get('temperature')?.default).toBe(c.sampling.temperature);
    expect(byKey.get('top_p')?.default).toBe(c.sampling.topP);
    // epsilon has no CLI default: the trainer decides it from the level (GSPO's own range)
    expect(byKey.get('epsilon')?.default).toBeUndefined();
    expect(byKey.get('epsilon')?.defaultText).toContain(String(c.epsilon));
    expect(byKey.get('beta')?.default).toBe(c.beta);
    expect(byKey.get('loss_type')?.default).toBe(c.lossType);
    expect(byKey.get('kl_estimator')?.default).toBe(c.klEstimator);
    expect(byKey.get('importance_sampling_level')?.default).toBe(c.importanceSamplingLevel);
    expect(byKey.get('top_entropy_quantile')?.default).toBe(c.topEntropyQuantile);
    expect(byKey.get('max_num_gen_batches')?.default).toBe(c.maxNumGenBatches);
    expect(byKey.get('vllm_importance_sampling_clip_max')?.default).toBe(c.rolloutCorrectionMax);
    expect(byKey.get('vllm_importance_sampling_clip_min')?.default).toBe(c.rolloutCorrectionMin);
    expect(byKey.get('num_completions_to_print')?.default).toBe(c.samplesPerLog);
    expect(byKey.get('sample_steps')?.default).toBe(c.sampleSteps);
    expect((byKey.get('reward_timeout')?.default as number) * 1000).toBe(c.rewardTimeoutMs);
    expect(c.learningRate).toBe(LEARNING_RATE_DEFAULTS.grpo);
    expect(c.promptsPerStep).toBe(GRPO_DEFAULTS.promptsPerStep);
    expect(c.epsilonHigh).toBe(c.epsilon);
    expect(c.sampling.topK).toBe(SAMPLING_DEFAULTS.topK);
  });

  it('the CLI and the library check the same bounds', () => {
    const epsilon = TRAIN_SETTINGS.find((s) => s.key === 'epsilon')!;
    expect({ min: epsilon.min, max: epsilon.max, maxOpen: epsilon.maxOpen }).toEqual(SETTING_BOUNDS.epsilon);
    expect(formatBounds(SETTING_BOUNDS.epsilon)).toBe('[0, 1)');
    expect(inBounds(0.999, SETTING_BOUNDS.epsilon)).toBe(true);
    expect(inBounds(1, SETTING_BOUNDS.epsilon)).toBe(false);
    expect(() => resolveGrpoOptions({ model, dataset, epsilon: 1 })).toThrow(/epsilon must be a number in \[0, 1\), got 1/);
    expect(() => resolveGrpoOptions({ model, dataset, temperature: 0 })).toThrow(/temperature must be a number in \(0, ∞\)/);
  });
});
