import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_SHAPES, initModel, modelConfigFor, resolveModelSpec, tensorSpecs, type InitModelOptions } from '../ts/init-model.js';
import { bf16BitsToF32, f32ToBf16Bits, floatData, readSafetensorsDir, type ReadTensor } from '../ts/safetensors.js';
import { HfTokenizer } from '../ts/tokenizer.js';
import { ReferenceModel, loadReferenceModel, parseReferenceConfig, ropeInvFreq } from './reference/reference-model.js';

const root = mkdtempSync(join(tmpdir(), 'hayate-init-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => join(root, `m${dirCount++}`);

/** Small shapes so every case writes in milliseconds. */
const SMALL: InitModelOptions = { hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 8, std: 0.2, normNoise: 0.1 };

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

describe('model shapes', () => {
  it('lists the named shapes', () => {
    expect(MODEL_SHAPES).toEqual(['tiny', 'qwen3-0.6b']);
  });

  it('qwen3-0.6b has Qwen3-0.6B config values', () => {
    const { spec, config, generationConfig } = modelConfigFor({ shape: 'qwen3-0.6b' });
    expect(config).toEqual({
      architectures: ['Qwen3ForCausalLM'],
      attention_bias: false,
      attention_dropout: 0,
      bos_token_id: 151643,
      eos_token_id: 151645,
      head_dim: 128,
      hidden_act: 'silu',
      hidden_size: 1024,
      initializer_range: 0.02,
      intermediate_size: 3072,
      max_position_embeddings: 40960,
      max_window_layers: 28,
      model_type: 'qwen3',
      num_attention_heads: 16,
      num_hidden_layers: 28,
      num_key_value_heads: 8,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000,
      sliding_window: null,
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      transformers_version: '4.51.0',
      use_cache: true,
      use_sliding_window: false,
      vocab_size: 151936,
    });
    expect(generationConfig.eos_token_id).toEqual([151645, 151643]);
    expect(spec.dtype).toBe('BF16');
    expect(spec.tokenizer).toBe('qwen3');
    // 0.6B parameters (tied embedding counted once), as the model card says: 0.44B without the embedding
    const params = tensorSpecs(spec).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBe(596049920);
    expect(params - 151936 * 1024).toBe(440467456);
  });

  it('tiny is a small tied Qwen3 over the tiny tokenizer', () => {
    const { spec, config } = modelConfigFor({ shape: 'tiny' });
    expect(spec).toMatchObject({ arch: 'qwen3', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 16, maxPosition: 512, tied: true });
    expect(config.vocab_size).toBeGreaterThanOrEqual(400);
    expect(config.vocab_size).toBeLessThanOrEqual(512);
  });

  it('derives head_dim from overridden sizes and rejects inconsistent ones', () => {
    expect(resolveModelSpec({ shape: 'qwen3-0.6b', hidden: 512, heads: 8, kvHeads: 8 }).headDim).toBe(64);
    expect(() => resolveModelSpec({ heads: 4, kvHeads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => resolveModelSpec({ vocab: 100 })).toThrow(/smaller than the tiny tokenizer/);
    expect(() => resolveModelSpec({ headDim: 7 })).toThrow(/even/);
    expect(() => resolveModelSpec({ arch: 'gpt2' as never })).toThrow(/unknown arch/);
    expect(() => resolveModelSpec({ arch: 'qwen2', attentionBias: false })).toThrow(/qwen2 always/);
  });

  it('writes llama3 rope scaling as transformers does', () => {
    const { config } = modelConfigFor({ arch: 'llama', ropeScaling: { type: 'llama3', factor: 8 } });
    expect(config.rope_scaling).toEqual({ factor: 8, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' });
    expect(config.attention_bias).toBe(false);
    expect(config.mlp_bias).toBe(false);
  });
});

describe('initModel', () => {
  const cases: [string, InitModelOptions][] = [
    ['qwen3 tied GQA', { arch: 'qwen3', tied: true }],
    ['qwen3 untied MHA with bias', { arch: 'qwen3', tied: false, kvHeads: 4, attentionBias: true }],
    ['qwen2 tied GQA', { arch: 'qwen2' }],
    ['qwen2 untied MHA', { arch: 'qwen2', tied: false, kvHeads: 4 }],
    ['llama untied GQA', { arch: 'llama', tied: false }],
    ['llama tied MHA with bias, llama3 rope, bf16', { arch: 'llama', kvHeads: 4, attentionBias: true, ropeScaling: { type: 'llama3', factor: 8, originalMaxPositionEmbeddings: 64 }, dtype: 'BF16' }],
    ['llama f16, sharded', { arch: 'llama', dtype: 'F16', maxShardBytes: 20000 }],
  ];

  for (const [label, extra] of cases) {
    it(`writes a loadable directory: ${label}`, async () => {
      const dir = newDir();
      const result = await initModel(dir, { ...SMALL, ...extra });
      const { spec } = result;
      const files = readdirSync(dir).sort();
      for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) expect(files).toContain(f);
      if (extra.maxShardBytes) {
        expect(files).toContain('model.safetensors.index.json');
        expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
      } else expect(files).toContain('model.safetensors');
      expect(files.some((f) => f.includes('.tmp-'))).toBe(false);

      const config = readJson(join(dir, 'config.json'));
      expect(config.model_type).toBe(spec.arch);
      expect(config.tie_word_embeddings).toBe(spec.tied);
      expect(config.num_key_value_heads).toBe(spec.kvHeads);
      expect(config.torch_dtype).toBe({ F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[spec.dtype]);
      if (spec.arch === 'qwen2') expect(config).not.toHaveProperty('attention_bias');
      else expect(config.attention_bias).toBe(spec.attentionBias);

      // exactly the tensors transformers expects, with its shapes and the requested dtype
      const weights = readSafetensorsDir(dir);
      const expected = tensorSpecs(spec);
      expect([...weights.keys()].sort()).toEqual(expected.map((t) => t.name).sort());
      for (const t of expected) {
        expect(weights.get(t.name)!.shape).toEqual(t.shape);
        expect(weights.get(t.name)!.dtype).toBe(spec.dtype);
      }
      expect(weights.has('lm_head.weight')).toBe(!spec.tied);
      expect(weights.has('model.layers.0.self_attn.q_norm.weight')).toBe(spec.arch === 'qwen3');
      expect(weights.has('model.layers.1.self_attn.k_proj.bias')).toBe(spec.arch === 'qwen2' || spec.attentionBias);
      expect(weights.has('model.layers.1.self_attn.o_proj.bias')).toBe(spec.arch !== 'qwen2' && spec.attentionBias);

      const tok = await HfTokenizer.load(dir);
      expect(tok.vocabSize).toBeLessThanOrEqual(spec.vocab);
      expect(tok.eosTokenIds).toContain(config.eos_token_id);

      const ref = loadReferenceModel(dir);
      const logits = ref.logits(tok.encode('Tom has 3 apples.'));
      expect(logits[0].length).toBe(spec.vocab);
      expect(logits.every((row) => row.every(Number.isFinite))).toBe(true);
    });
  }

  it('is deterministic per seed and independent of dtype and sharding', async () => {
    const a = readSafetensorsDir((await initModel(newDir(), { ...SMALL, seed: 7 })).dir);
    const b = readSafetensorsDir((await initModel(newDir(), { ...SMALL, seed: 7, maxShardBytes: 30000 })).dir);
    const c = readSafetensorsDir((await initModel(newDir(), { ...SMALL, seed: 8 })).dir);
    const bf = readSafetensorsDir((await initModel(newDir(), { ...SMALL, seed: 7, dtype: 'BF16' })).dir);
    const name = 'model.layers.1.mlp.up_proj.weight';
    expect(b.get(name)!.data).toEqual(a.get(name)!.data);
    expect(c.get(name)!.data).not.toEqual(a.get(name)!.data);
    const f32 = a.get(name)!.data as Float64Array;
    const b16 = bf.get(name)!.data as Float64Array;
    for (let i = 0; i < f32.length; i++) expect(b16[i]).toBe(bf16BitsToF32(f32ToBf16Bits(f32[i])));
  });

  it('uses the requested std and norm noise', async () => {
    const w = readSafetensorsDir((await initModel(newDir(), { ...SMALL, hidden: 64, std: 0.5, normNoise: 0.25 })).dir);
    const stats = (t: ReadTensor) => {
      const d = t.data as Float64Array;
      const mean = d.reduce((s, v) => s + v, 0) / d.length;
      const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length);
      return { mean, sd };
    };
    const embed = stats(w.get('model.embed_tokens.weight')!);
    expect(Math.abs(embed.mean)).toBeLessThan(0.02);
    expect(embed.sd).toBeGreaterThan(0.48);
    expect(embed.sd).toBeLessThan(0.52);
    const norm = stats(w.get('model.norm.weight')!);
    expect(Math.abs(norm.mean - 1)).toBeLessThan(0.15);
    expect(norm.sd).toBeGreaterThan(0.15);
    const plain = readSafetensorsDir((await initModel(newDir(), SMALL)).dir);
    const ones = (await initModel(newDir(), { ...SMALL, normNoise: 0 })).dir;
    expect(Array.from(floatData(readSafetensorsDir(ones).get('model.norm.weight')!)).every((v) => v === 1)).toBe(true);
    expect(plain.get('model.norm.weight')!.data).not.toEqual(readSafetensorsDir(ones).get('model.norm.weight')!.data);
  });

  it('draws the embedding and lm_head with embeddingStd when given', async () => {
    const sd = (t: ReadTensor) => {
      const d = t.data as Float64Array;
      return Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    };
    const w = readSafetensorsDir((await initModel(newDir(), { ...SMALL, hidden: 64, tied: false, std: 0.05, embeddingStd: 0.4 })).dir);
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) expect(sd(w.get(name)!)).toBeCloseTo(0.4, 1);
    expect(sd(w.get('model.layers.0.mlp.up_proj.weight')!)).toBeCloseTo(0.05, 2);
    expect(resolveModelSpec({ std: 0.3 }).embeddingStd).toBe(0.3); // default: std
    expect(() => resolveModelSpec({ embeddingStd: -1 })).toThrow(/embeddingStd/);
  });

  it('refuses to overwrite unless asked, and replaces old shards when asked', async () => {
    const dir = newDir();
    await initModel(dir, { ...SMALL, maxShardBytes: 20000 });
    await expect(initModel(dir, SMALL)).rejects.toThrow(/already holds a model/);
    await initModel(dir, { ...SMALL, overwrite: true });
    expect(readdirSync(dir).filter((f) => f.startsWith('model')).sort()).toEqual(['model.safetensors']);
  });

  it('copies the real Qwen3 tokenizer', async () => {
    const dir = newDir();
    const { spec } = await initModel(dir, { hidden: 16, intermediate: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, tokenizer: 'qwen3' });
    expect(spec.vocab).toBe(151936);
    expect(existsSync(join(dir, 'tokenizer.json'))).toBe(true);
    const tok = await HfTokenizer.load(dir);
    expect(tok.vocabSize).toBe(151669);
    expect(tok.eosTokenIds).toEqual([151645, 151643]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Reference model properties that can be checked by hand.

describe('reference model', () => {
  it('with zero layers contributing, logits are the tied embedding scores of the final-normed embedding', async () => {
    const dir = (await initModel(newDir(), { ...SMALL, arch: 'qwen3', tied: true, attentionBias: true })).dir;
    const weights = readSafetensorsDir(dir);
    // Zero o_proj (and its bias) and down_proj: each layer's residual branches then add exactly zero.
    for (const [name, t] of weights) if (/o_proj|down_proj/.test(name)) (t.data as Float64Array).fill(0);
    const config = parseReferenceConfig(readJson(join(dir, 'config.json')));
    const model = new ReferenceModel(config, weights);
    const E = weights.get('model.embed_tokens.weight')!.data as Float64Array;
    const w = weights.get('model.norm.weight')!.data as Float64Array;
    const D = config.hidden;
    const tokens = [5, 17, 5, 300];
    const logits = model.logits(tokens);
    tokens.forEach((tok, pos) => {
      const x = E.subarray(tok * D, (tok + 1) * D);
      const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / D + config.rmsNormEps);
      for (const v of [0, 5, 300, config.vocabSize - 1]) {
        let dot = 0;
        for (let i = 0; i < D; i++) dot += (x[i] / rms) * w[i] * E[v * D + i];
        expect(logits[pos][v]).toBeCloseTo(dot, 12);
      }
    });
  });

  it('is causal: logits at position t ignore later tokens', async () => {
    const ref = loadReferenceModel((await initModel(newDir(), { ...SMALL, arch: 'llama', tied: false })).dir);
    const a = ref.logits([1, 2, 3, 4, 5, 6]);
    const b = ref.logits([1, 2, 3, 40, 50, 60]);
    for (let t = 0; t < 3; t++) expect(Array.from(b[t])).toEqual(Array.from(a[t]));
    expect(Array.from(b[3])).not.toEqual(Array.from(a[3]));
  });

  it('GQA equals MHA with each kv head repeated for its group of query heads', async () => {
    const dir = (await initModel(newDir(), { ...SMALL, arch: 'qwen2', heads: 4, kvHeads: 2 })).dir;
    const weights = readSafetensorsDir(dir);
    const cfg = parseReferenceConfig(readJson(join(dir, 'config.json')));
    const { headDim: hd, hidden: D } = cfg;
    const mha = new Map(weights);
    for (let l = 0; l < cfg.layers; l++) {
      for (const proj of ['k_proj', 'v_proj']) {
        for (const kind of ['weight', 'bias']) {
          const name = `model.layers.${l}.self_attn.${proj}.${kind}`;
          const src = weights.get(name)!.data as Float64Array;
          const rowLen = kind === 'weight' ? D : 1;
          const out = new Float64Array(4 * hd * rowLen);
          for (let h = 0; h < 4; h++) out.set(src.subarray(Math.floor(h / 2) * hd * rowLen, (Math.floor(h / 2) + 1) * hd * rowLen), h * hd * rowLen);
          mha.set(name, { dtype: 'F32', shape: kind === 'weight' ? [4 * hd, D] : [4 * hd], data: out });
        }
      }
    }
    const gqa = new ReferenceModel(cfg, weights).logits([3, 1, 4, 1, 5]);
    const full = new ReferenceModel({ ...cfg, kvHeads: 4 }, mha).logits([3, 1, 4, 1, 5]);
    for (let t = 0; t < gqa.length; t++) for (let v = 0; v < gqa[t].length; v++) expect(full[t][v]).toBeCloseTo(gqa[t][v], 12);
  });

  it('scales RoPE frequencies like transformers llama3', () => {
    const base = parseReferenceConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_attention_heads: 1, intermediate_size: 1, num_hidden_layers: 1, vocab_size: 1, rope_theta: 500000 });
    const scaled = { ...base, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } };
    const f0 = ropeInvFreq(base);
    const f1 = ropeInvFreq(scaled);
    expect(f0[1]).toBeCloseTo(1 / Math.pow(500000, 2 / 64), 15);
    f0.forEach((f, i) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < 8192 / 4) expect(f1[i]).toBe(f); // high frequency: unchanged
      else if (wavelen > 8192) expect(f1[i]).toBeCloseTo(f / 8, 15); // low frequency: divided by factor
      else expect(f1[i]).toBeGreaterThan(f / 8); // in between: interpolated
    });
    expect(f1[f1.length - 1]).toBeCloseTo(f0[f0.length - 1] / 8, 15);
  });
});
