// PEFT adapters on disk: the files hayate writes match PEFT's documented format (a fixture written from
// the format's documentation loads and means W + (alpha / r) B A, checked against the float64 reference
// model), adapters round-trip, merging gives a model with the same outputs, and bad adapters give typed errors.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, parsePeftTensorName, peftTensorName, readAdapter, saveAdapter, saveMergedModel } from '../ts/adapter.js';
import { HayateError, ModelFormatError } from '../ts/errors.js';
import { Model } from '../ts/model.js';
import { readSafetensors, readSafetensorsDir, readSafetensorsHeader, writeSafetensors, type WriteTensor } from '../ts/safetensors.js';
import { parseReferenceConfig, ReferenceModel } from './reference/reference-model.js';
import { cleanupTempDirs, makeModel, randomTokens, relativeError, tempDir } from './helpers.js';

let baseDir: string;
let model: Model;

beforeAll(async () => {
  baseDir = await makeModel({ arch: 'qwen3', layers: 2 });
  model = await Model.load(baseDir, { threads: 2 });
});
afterAll(async () => {
  await model.dispose();
  cleanupTempDirs();
});

/** Deterministic values in [-scale, scale). */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** A PEFT adapter directory written by hand from the format's documentation (docs: "PEFT checkpoint format"). */
function writeFixture(dir: string, opts: { r: number; alpha: number; targets: string[]; rslora?: boolean; config?: Record<string, unknown>; names?: (layer: number, target: string, which: 'A' | 'B') => string }): Map<string, Float32Array> {
  mkdirSync(dir, { recursive: true });
  const info = model.info;
  const dims: Record<string, [number, number]> = {
    q_proj: [info.numHeads * info.headDim, info.hiddenSize], k_proj: [info.numKvHeads * info.headDim, info.hiddenSize],
    v_proj: [info.numKvHeads * info.headDim, info.hiddenSize], o_proj: [info.hiddenSize, info.numHeads * info.headDim],
    gate_proj: [info.intermediateSize, info.hiddenSize], up_proj: [info.intermediateSize, info.hiddenSize], down_proj: [info.hiddenSize, info.intermediateSize],
  };
  const tensors: WriteTensor[] = [];
  const data = new Map<string, Float32Array>();
  let seed = 1;
  for (let layer = 0; layer < info.numLayers; layer++) {
    for (const target of opts.targets) {
      const [out, inp] = dims[target];
      const section = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(target) ? 'self_attn' : 'mlp';
      const name = (w: 'A' | 'B') => opts.names?.(layer, target, w) ?? `base_model.model.model.layers.${layer}.${section}.${target}.lora_${w}.weight`;
      const a = values(opts.r * inp, seed++, 0.3), b = values(out * opts.r, seed++, 0.3);
      tensors.push({ name: name('A'), dtype: 'F32', shape: [opts.r, inp], data: a });
      tensors.push({ name: name('B'), dtype: 'F32', shape: [out, opts.r], data: b });
      data.set(`${layer}.${target}.A`, a);
      data.set(`${layer}.${target}.B`, b);
    }
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  const config = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'Qwen/Qwen3-0.6B', bias: 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    loftq_config: {}, lora_alpha: opts.alpha, lora_dropout: 0.05, megatron_config: null, megatron_core: 'megatron.core',
    modules_to_save: null, peft_type: 'LORA', r: opts.r, rank_pattern: {}, revision: null, target_modules: opts.targets,
    task_type: 'CAUSAL_LM', use_dora: false, use_rslora: opts.rslora ?? false, ...(opts.config ?? {}),
  };
  writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(config, null, 2));
  return data;
}

/** The reference model with W + scale * B A applied to every adapted projection (PEFT's forward, merged). */
function mergedReference(data: Map<string, Float32Array>, r: number, scale: number): ReferenceModel {
  const weights = readSafetensorsDir(baseDir);
  for (const [key, a] of data) {
    const [layer, target, which] = key.split('.');
    if (which !== 'A') continue;
    const b = data.get(`${layer}.${target}.B`)!;
    const section = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(target) ? 'self_attn' : 'mlp';
    const w = weights.get(`model.layers.${layer}.${section}.${target}.weight`)!;
    const [out, inp] = w.shape;
    const wd = w.data as Float64Array;
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inp; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b[i * r + k] * a[k * inp + j];
        wd[i * inp + j] += scale * s;
      }
  }
  return new ReferenceModel(parseReferenceConfig(JSON.parse(readFileSync(join(baseDir, 'config.json'), 'utf8'))), weights);
}

describe('PEFT adapter format', () => {
  it('tensor names follow PEFT (adapter name stripped on save, accepted on load)', () => {
    expect(peftTensorName(3, 'q_proj', 'A')).toBe('base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight');
    expect(peftTensorName(0, 'down_proj', 'B')).toBe('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight');
    expect(parsePeftTensorName('base_model.model.model.layers.12.mlp.gate_proj.lora_B.default.weight')).toEqual({ layer: 12, target: 'gate_proj', which: 'B' });
    expect(parsePeftTensorName('base_model.model.model.layers.1.mlp.q_proj.lora_A.weight')).toBeNull();
    expect(parsePeftTensorName('base_model.model.lm_head.lora_A.weight')).toBeNull();
  });

  it('a fixture written from the documentation loads and equals W + (alpha/r) B A in the float64 reference', async () => {
    const dir = tempDir();
    const data = writeFixture(dir, { r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] });
    const loaded = await loadAdapter(model, dir);
    expect(loaded).toMatchObject({ rank: 4, alpha: 8, rslora: false });
    expect(model.lora?.scale).toBe(2);
    const ref = mergedReference(data, 4, 2);
    const tokens = randomTokens(21, model.info.vocabSize, 5);
    const got = await model.logits(tokens);
    const want = ref.logits(tokens);
    for (let t = 0; t < tokens.length; t++) expect(relativeError(got[t], want[t])).toBeLessThan(1e-4);
    // LoRA off gives the base model back
    const base = await model.logits(tokens, { lora: false });
    const baseRef = mergedReference(new Map(), 4, 0).logits(tokens);
    expect(relativeError(base[3], baseRef[3])).toBeLessThan(1e-4);
    expect(relativeError(got[3], base[3])).toBeGreaterThan(1e-3);
  });

  it('in precision f64 the engine with an adapter equals the float64 reference to rounding', async () => {
    const dir = tempDir();
    const data = writeFixture(dir, { r: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
    const m64 = await Model.load(baseDir, { threads: 1, precision: 'f64' });
    try {
      expect(m64.info.precision).toBe('f64');
      await loadAdapter(m64, dir);
      const tokens = randomTokens(13, m64.info.vocabSize, 9);
      const got = await m64.logits(tokens);  // logits come back as f32
      const want = mergedReference(data, 4, 2).logits(tokens);
      for (let t = 0; t < tokens.length; t++) expect(relativeError(got[t], want[t])).toBeLessThan(1e-6);
    } finally {
      await m64.dispose();
    }
  });

  it('rsLoRA scales by alpha / sqrt(r), and ".default" names from a loaded PEFT model are accepted', async () => {
    const dir = tempDir();
    const data = writeFixture(dir, {
      r: 4, alpha: 3, targets: ['k_proj', 'o_proj', 'gate_proj', 'up_proj'], rslora: true,
      names: (layer, target, w) => `base_model.model.model.layers.${layer}.${['k_proj', 'o_proj'].includes(target) ? 'self_attn' : 'mlp'}.${target}.lora_${w}.default.weight`,
    });
    await loadAdapter(model, dir);
    expect(model.lora?.scale).toBeCloseTo(1.5, 6);
    const tokens = randomTokens(9, model.info.vocabSize, 6);
    const got = await model.logits(tokens);
    const want = mergedReference(data, 4, 1.5).logits(tokens);
    for (let t = 0; t < tokens.length; t++) expect(relativeError(got[t], want[t])).toBeLessThan(1e-4);
  });

  it('save writes PEFT names, F32 tensors and a PEFT LoRA config; load round-trips the outputs', async () => {
    await model.attachLora({ rank: 8, alpha: 16, seed: 3 });
    const tensors = await model.loraTensors();
    await model.setLoraTensors(tensors.map((t, i) => ({ ...t, b: values(t.b.length, 100 + i, 0.2) })));
    const tokens = randomTokens(17, model.info.vocabSize, 7);
    const before = await model.logits(tokens);
    const dir = tempDir();
    expect(await saveAdapter(model, dir, { baseModelNameOrPath: 'Qwen/Qwen3-0.6B' })).toEqual([ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE]);

    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 16, use_rslora: false, lora_dropout: 0, bias: 'none',
      fan_in_fan_out: false, base_model_name_or_path: 'Qwen/Qwen3-0.6B', use_dora: false, modules_to_save: null, layers_to_transform: null,
    });
    expect([...config.target_modules].sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const header = readSafetensorsHeader(join(dir, ADAPTER_WEIGHTS_FILE));
    expect(header.tensors.size).toBe(2 * 7 * model.info.numLayers);
    expect(header.tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')).toEqual({ dtype: 'F32', shape: [8, model.info.hiddenSize] });
    expect(header.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')).toEqual({ dtype: 'F32', shape: [model.info.hiddenSize, 8] });
    for (const name of header.tensors.keys()) expect(parsePeftTensorName(name)).not.toBeNull();

    const other = await Model.load(baseDir, { threads: 1 });
    try {
      await loadAdapter(other, dir);
      const after = await other.logits(tokens);
      for (let t = 0; t < tokens.length; t++) expect(relativeError(after[t], before[t])).toBeLessThan(1e-6);
    } finally {
      await other.dispose();
    }
  });

  it('a subset of layers is saved with layers_to_transform, an irregular set as a target_modules regex', async () => {
    await model.attachLora({ rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'], layers: [1] });
    const dir = tempDir();
    await saveAdapter(model, dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(config.layers_to_transform).toEqual([1]);
    expect(readAdapter(dir, model).adapter.modules).toEqual([{ layer: 1, target: 'q_proj' }, { layer: 1, target: 'v_proj' }]);

    await model.attachLora({ rank: 2, alpha: 4, modules: [{ layer: 0, target: 'q_proj' }, { layer: 1, target: 'up_proj' }] });
    const dir2 = tempDir();
    await saveAdapter(model, dir2);
    const c2 = JSON.parse(readFileSync(join(dir2, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(typeof c2.target_modules).toBe('string');
    expect(new RegExp(`^(?:${c2.target_modules})$`).test('model.layers.0.self_attn.q_proj')).toBe(true);
    expect(new RegExp(`^(?:${c2.target_modules})$`).test('model.layers.1.self_attn.q_proj')).toBe(false);
    expect(readAdapter(dir2, model).adapter.modules).toHaveLength(2);
  });

  it('merging writes a full model whose outputs equal the model with its adapter', async () => {
    const dir = tempDir();
    writeFixture(dir, { r: 4, alpha: 8, targets: ['q_proj', 'o_proj', 'up_proj', 'down_proj'] });
    await loadAdapter(model, dir);
    const out = tempDir();
    await saveMergedModel(model, out);
    const merged = await Model.load(out, { threads: 1 });
    try {
      expect(merged.lora).toBeNull();
      expect(merged.tokenizer).toBeDefined();
      const tokens = randomTokens(15, model.info.vocabSize, 8);
      const a = await model.logits(tokens), b = await merged.logits(tokens);
      for (let t = 0; t < tokens.length; t++) expect(relativeError(b[t], a[t])).toBeLessThan(1e-5);
      // tensors without an adapter are copied as they were
      const w = readSafetensors(join(out, 'model.safetensors'));
      const base = readSafetensorsDir(baseDir);
      expect(Array.from(w.get('model.layers.0.self_attn.k_proj.weight')!.data as Float64Array)).toEqual(Array.from(base.get('model.layers.0.self_attn.k_proj.weight')!.data as Float64Array));
      expect(w.size).toBe(base.size);
    } finally {
      await merged.dispose();
    }
    await expect(saveMergedModel(model, out)).rejects.toThrow(/already holds a model/);
    await expect(saveMergedModel(model, baseDir)).rejects.toThrow(/another directory/);
  });
});

describe('bad adapters give typed errors', () => {
  async function loadError(dir: string): Promise<HayateError> {
    try {
      await loadAdapter(model, dir);
    } catch (err) {
      expect(err).toBeInstanceOf(HayateError);
      return err as HayateError;
    }
    throw new Error('loading the adapter did not fail');
  }

  it('missing directory or files', async () => {
    expect((await loadError(join(tempDir(), 'nope'))).code).toBe('ERR_NOT_FOUND');
    const dir = tempDir();
    writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'] });
    writeFileSync(join(dir, ADAPTER_WEIGHTS_FILE), '');
    const e = await loadError(dir);
    expect(e).toBeInstanceOf(ModelFormatError);
  });

  it('shapes of another model', async () => {
    const dir = tempDir();
    writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'] });
    const t = readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
    writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), [...t].map(([name, v]) => ({ name, dtype: 'F32' as const, shape: v.shape.map((d) => (d === 2 ? 2 : d + 8)), data: new Float32Array(v.shape.map((d) => (d === 2 ? 2 : d + 8)).reduce((a, b) => a * b, 1)) })));
    const e = await loadError(dir);
    expect(e.code).toBe('ERR_BAD_TENSOR');
    expect(e.message).toMatch(/has shape .* expected/);
  });

  it('targets hayate cannot adapt, or tensors the config does not cover', async () => {
    const dir = tempDir();
    writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'], config: { target_modules: ['q_proj', 'lm_head'] } });
    expect((await loadError(dir)).code).toBe('ERR_BAD_CONFIG');
    writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'], config: { target_modules: ['v_proj'] } });
    const e = await loadError(dir);
    expect(e.code).toBe('ERR_BAD_CONFIG');
    expect(e.message).toMatch(/does not cover model\.layers\.0\.self_attn\.q_proj/);
  });

  it('unknown tensors, a missing half, rank <= 0, DoRA, other PEFT types', async () => {
    const dir = tempDir();
    writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'] });
    const t = readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
    const asWrite = (entries: [string, { shape: number[]; data: unknown }][]): WriteTensor[] =>
      entries.map(([name, v]) => ({ name, dtype: 'F32', shape: v.shape, data: Float32Array.from(v.data as Float64Array) }));
    writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), [...asWrite([...t]), { name: 'base_model.model.lm_head.lora_A.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]);
    expect((await loadError(dir)).code).toBe('ERR_BAD_TENSOR');
    writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), asWrite([...t].filter(([n]) => !n.includes('layers.1.self_attn.q_proj.lora_B'))));
    expect((await loadError(dir)).message).toMatch(/has lora_A but no lora_B/);
    for (const [config, code] of [[{ r: 0 }, 'ERR_INVALID_ARGUMENT'], [{ use_dora: true }, 'ERR_BAD_CONFIG'], [{ peft_type: 'IA3' }, 'ERR_BAD_CONFIG'], [{ rank_pattern: { q_proj: 4 } }, 'ERR_BAD_CONFIG']] as const) {
      writeFixture(dir, { r: 2, alpha: 4, targets: ['q_proj'], config });
      expect((await loadError(dir)).code).toBe(code);
    }
  });

  it('rank <= 0 and unknown targets when attaching', async () => {
    await expect(model.attachLora({ rank: 0, alpha: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.attachLora({ rank: -2, alpha: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.attachLora({ rank: 2, alpha: 1, targets: ['lm_head' as never] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => model.loraModules({ layers: [99] })).toThrow(/does not exist/);
  });
});
