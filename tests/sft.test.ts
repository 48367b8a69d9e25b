// SftTrainer: the loss falls on the synthetic task, events per update, the adapter saved in PEFT format,
// SFT targets in the recipe's format (worked solution + \boxed{answer} + EOS), abort and bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAdapter } from '../ts/adapter.js';
import { examplesFromRecords } from '../ts/data/dataset.js';
import { syntheticExamples } from '../ts/data/synthetic.js';
import { AbortError } from '../ts/errors.js';
import { Model } from '../ts/model.js';
import { encodeSftExamples, sftTargetText } from '../ts/train/sft-examples.js';
import { SftTrainer, type SftStepEvent } from '../ts/train/sft-trainer.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

let modelDir: string;

beforeAll(async () => {
  modelDir = await makeModel({ arch: 'qwen3' });
});
afterAll(cleanupTempDirs);

describe('SFT targets', () => {
  it('are the worked solution then the boxed answer, ending with EOS', async () => {
    const [e] = examplesFromRecords([{ question: 'Tom has 3 apples and buys 4. How many?', answer: 'He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7' }]);
    expect(sftTargetText(e)).toBe('He has 3 + 4 = 7 apples.\nThe final answer is \\boxed{7}.');
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const { sequences } = encodeSftExamples(model, [e, { prompt: 'Q', completion: 'A' }, { promptTokens: [1, 2], completionTokens: [3] }]);
      const eos = model.tokenizer!.eosTokenIds[0];
      expect(sequences[0].completion[sequences[0].completion.length - 1]).toBe(eos);
      expect(model.tokenizer!.decode(sequences[0].completion.slice(0, -1))).toBe(sftTargetText(e));
      expect(sequences[2]).toEqual({ prompt: [1, 2], completion: [3] });
      const cut = encodeSftExamples(model, [e], { maxLength: sequences[0].prompt.length + 3 });
      expect(cut.truncated).toBe(1);
      expect(cut.sequences[0].completion).toHaveLength(3);
      expect(() => encodeSftExamples(model, [{ promptTokens: [1], completionTokens: [model.info.vocabSize] }])).toThrow(/outside the vocabulary/);
    } finally {
      await model.dispose();
    }
  });
});

describe('SftTrainer', () => {
  it('lowers the loss on synthetic problems, emits one event per update and saves the adapter', async () => {
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const data = syntheticExamples({ count: 16, seed: 2, level: 1 });
      const out = tempDir();
      const sft = new SftTrainer({ model, data, lora: { rank: 8, alpha: 16 }, learningRate: 1e-2, batchSize: 4, gradientAccumulationSteps: 2, epochs: 6, seed: 1, outputDir: out, schedule: { type: 'cosine', warmupSteps: 1 } });
      expect(sft.totalSteps).toBe(12);
      const events: SftStepEvent[] = [];
      sft.on('step', (e) => events.push(e));
      const r = await sft.train();
      expect(r.steps).toBe(12);
      expect(events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(events[0].learningRate).toBe(0); // warmup starts at 0
      expect(events[1].learningRate).toBeCloseTo(1e-2, 12);
      const first = r.losses.slice(0, 2).reduce((a, b) => a + b) / 2;
      const last = r.losses.slice(-2).reduce((a, b) => a + b) / 2;
      expect(last).toBeLessThan(first - 0.5);
      expect(r.adapterDir).toBe(out);
      const { adapter } = readAdapter(out, model);
      expect(adapter.rank).toBe(8);
      expect(model.lora).not.toBeNull(); // the model keeps its trained adapters
    } finally {
      await model.dispose();
    }
  });

  it('aborts with AbortError and rejects bad options', async () => {
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const data = syntheticExamples({ count: 8, seed: 2, level: 1 });
      expect(() => new SftTrainer({ model, data: [] })).toThrow(/dataset is empty/);
      expect(() => new SftTrainer({ model, data, batchSize: 0 })).toThrow(/batchSize/);
      const ac = new AbortController();
      const sft = new SftTrainer({ model, data, batchSize: 2, maxSteps: 50 });
      sft.on('step', (e) => {
        if (e.step === 2) ac.abort();
      });
      await expect(sft.train({ signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
      await expect(new SftTrainer({ model, data: [{ prompt: 'x', completion: 'y' }], maxLength: 1 }).train()).rejects.toThrow(/maxLength/);
    } finally {
      await model.dispose();
    }
  });
});
