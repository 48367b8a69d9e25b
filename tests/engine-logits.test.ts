// The engine's logits match an independent float64 reference implementation of the Hugging Face
// forward pass (tests/reference), for every supported architecture, tied/untied embeddings, GQA and MHA;
// greedy generation picks the reference argmax at every step.
import { afterAll, describe, expect, it } from 'vitest';
import type { InitModelOptions } from '../ts/init-model.js';
import { Model } from '../ts/model.js';
import { loadReferenceModel } from './reference/reference-model.js';
import { argmax, cleanupTempDirs, logSoftmaxAt, makeModel, randomTokens, relativeError } from './helpers.js';

afterAll(cleanupTempDirs);

// Tolerance: normwise relative error max|engine - ref| / max|ref| per position (f32 engine vs f64 reference).
const TOLERANCE = 1e-4;

const variants: { name: string; options: InitModelOptions }[] = [
  { name: 'llama untied MHA', options: { arch: 'llama', tied: false, heads: 4, kvHeads: 4 } },
  { name: 'llama tied GQA + attention bias + llama3 rope scaling', options: { arch: 'llama', tied: true, heads: 4, kvHeads: 2, attentionBias: true, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } } },
  { name: 'qwen2 untied GQA (q/k/v bias)', options: { arch: 'qwen2', tied: false, heads: 4, kvHeads: 2 } },
  { name: 'qwen2 tied MHA', options: { arch: 'qwen2', tied: true, heads: 4, kvHeads: 4 } },
  { name: 'qwen3 tied GQA (q/k norm)', options: { arch: 'qwen3', tied: true, heads: 4, kvHeads: 2 } },
  { name: 'qwen3 untied MHA, head_dim != hidden/heads', options: { arch: 'qwen3', tied: false, heads: 4, kvHeads: 4, headDim: 32 } },
  { name: 'qwen3 bf16 weights, sharded', options: { arch: 'qwen3', dtype: 'BF16', maxShardBytes: 40_000 } },
];

describe('engine logits vs float64 reference', () => {
  for (const v of variants) {
    it(v.name, async () => {
      const dir = await makeModel(v.options);
      const ref = loadReferenceModel(dir);
      const model = await Model.load(dir, { gemm: 'builtin' });
      try {
        const tokens = randomTokens(37, model.info.vocabSize, 11);
        const got = await model.logits(tokens);
        const want = ref.logits(tokens);
        expect(got.length).toBe(tokens.length);
        for (let t = 0; t < tokens.length; t++) expect(relativeError(got[t], want[t])).toBeLessThan(TOLERANCE);

        // greedy generation = reference argmax step by step, with matching log-probs
        const prompt = tokens.slice(0, 5);
        const { results } = await model.generate({ tokens: prompt }, { temperature: 0, maxNewTokens: 8, ignoreEos: true });
        const c = results[0].completions[0];
        expect(c.tokens.length).toBe(8);
        const seq = [...prompt];
        for (let i = 0; i < c.tokens.length; i++) {
          const rows = ref.logits(seq);
          const last = rows[rows.length - 1];
          expect(c.tokens[i]).toBe(argmax(last));
          expect(c.logprobs[i]).toBeCloseTo(logSoftmaxAt(last, c.tokens[i]), 3);
          seq.push(c.tokens[i]);
        }
      } finally {
        await model.dispose();
      }
    });
  }

  it('the BLAS GEMM path (when built) agrees with the reference too', async () => {
    const dir = await makeModel({ arch: 'qwen3' });
    const ref = loadReferenceModel(dir);
    const model = await Model.load(dir, { gemm: 'auto' });
    try {
      const tokens = randomTokens(20, model.info.vocabSize, 3);
      const got = await model.logits(tokens);
      const want = ref.logits(tokens);
      for (let t = 0; t < tokens.length; t++) expect(relativeError(got[t], want[t])).toBeLessThan(TOLERANCE);
    } finally {
      await model.dispose();
    }
  });

  it('logprobs(sequences) = log_softmax of the reference logits at the next token', async () => {
    const dir = await makeModel({ arch: 'llama', tied: false });
    const ref = loadReferenceModel(dir);
    const model = await Model.load(dir);
    try {
      const seqs = [randomTokens(9, model.info.vocabSize, 1), randomTokens(23, model.info.vocabSize, 2), randomTokens(2, model.info.vocabSize, 5)];
      const out = await model.logprobs(seqs.map((tokens) => ({ tokens })));
      seqs.forEach((tokens, s) => {
        const rows = ref.logits(tokens);
        expect(out[s].logprobs.length).toBe(tokens.length - 1);
        for (let t = 0; t + 1 < tokens.length; t++) expect(out[s].logprobs[t]).toBeCloseTo(logSoftmaxAt(rows[t], tokens[t + 1]), 4);
      });
      // temperature scales the logits before the softmax
      const hot = await model.logprobs([{ tokens: seqs[0] }], { temperature: 2 });
      const rows = ref.logits(seqs[0]);
      expect(hot[0].logprobs[0]).toBeCloseTo(logSoftmaxAt(Array.from(rows[0], (x) => x / 2), seqs[0][1]), 4);
    } finally {
      await model.dispose();
    }
  });
});
