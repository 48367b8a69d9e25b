// Export to GGUF for llama.cpp, Ollama and LM Studio: a Hugging Face model directory (LLaMA, Qwen2, Qwen3),
// optionally with LoRA adapters merged, written as one .gguf file with the hyper-parameters, tensor names
// and tokenizer llama.cpp's loaders expect. Merging is the engine's own (Model.saveMerged: W + scale * B A
// in each weight's dtype, into a temporary safetensors file next to the output); the conversion then streams
// tensor by tensor from the safetensors files, so memory stays at one chunk of one tensor.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadAdapter } from '../adapter.js';
import { fromNative, HayateError, ModelFormatError } from '../errors.js';
import { Model } from '../model.js';
import { native } from '../native.js';
import { FILE_TYPE, Q8_0_BLOCK, writeGguf, type GgmlTypeName, type MetadataValue, type TensorPlan } from './gguf-format.js';
import { tokenizerMetadata } from './gguf-vocab.js';

export const GGUF_DTYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type GgufDtype = (typeof GGUF_DTYPES)[number];

export interface GgufExportOptions {
  /** Weight type of the matrices (default 'f16'); norms, biases and RoPE factors are always f32. */
  dtype?: GgufDtype;
  /** A PEFT adapter directory to merge (only when `model` is a directory; a loaded Model's attached adapters are merged as they are). */
  adapter?: string;
  /** general.name (default: the model directory's name). */
  name?: string;
  /** llama.cpp's pre-tokenizer name, when the one in tokenizer.json is not recognised (qwen2, llama-bpe, gpt-2). */
  preTokenizer?: string;
  /** Replace an existing file (default false). */
  overwrite?: boolean;
  /** CPU threads for loading the model to merge an adapter (default: one per hardware thread). */
  threads?: number;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; done: number; total: number }) => void;
}

export interface GgufExportResult {
  path: string;
  architecture: 'llama' | 'qwen2' | 'qwen3';
  dtype: GgufDtype;
  tensors: number;
  bytes: number;
  /** Whether LoRA adapters were merged into the weights. */
  merged: boolean;
}

type Json = Record<string, unknown>;
type Arch = 'llama' | 'qwen2' | 'qwen3';

/** The hyper-parameters of config.json, with the defaults the engine's loader uses (cpp/model_config.cpp). */
export interface ExportConfig {
  arch: Arch;
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  maxPosition: number;
  rmsEps: number;
  ropeTheta: number;
  ropeScaling: { type: 'linear'; factor: number } | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPosition: number } | null;
  tied: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
}

const ARCH_OF_CLASS: Record<string, Arch> = { LlamaForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', Qwen3ForCausalLM: 'qwen3' };

export function readExportConfig(dir: string): ExportConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `${path}: not found (expected a Hugging Face model directory)`);
  let c: Json;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (err) {
    throw new ModelFormatError('ERR_BAD_CONFIG', `${path}: ${(err as Error).message}`, { cause: err });
  }
  const bad = (msg: string) => new ModelFormatError('ERR_BAD_CONFIG', `${path}: ${msg}`);
  const archs = c.architectures;
  const cls = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  const arch = cls !== undefined ? ARCH_OF_CLASS[cls] : (['llama', 'qwen2', 'qwen3'] as const).find((a) => a === c.model_type);
  if (!arch) throw new ModelFormatError('ERR_UNSUPPORTED_ARCH', `${path}: architecture '${String(cls ?? c.model_type)}' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)`);
  const int = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(`${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v;
  };
  const num = (obj: Json, key: string, dflt?: number): number => {
    const v = obj[key] ?? dflt;
    if (typeof v !== 'number' || !(v > 0)) throw bad(`${key} must be a positive number, got ${JSON.stringify(obj[key])}`);
    return v;
  };
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const headDim = c.head_dim !== undefined && c.head_dim !== null ? int('head_dim') : arch === 'qwen3' ? 128 : hidden / heads;
  if (!Number.isInteger(headDim)) throw bad(`hidden_size ${hidden} is not a multiple of num_attention_heads ${heads} and there is no head_dim`);
  const params = c.rope_parameters && typeof c.rope_parameters === 'object' ? (c.rope_parameters as Json) : undefined;
  const ropeTheta = num(c, 'rope_theta', params ? num(params, 'rope_theta', 10000) : 10000);
  const rs = (c.rope_scaling ?? params) as Json | null | undefined;
  let ropeScaling: ExportConfig['ropeScaling'] = null;
  if (rs && typeof rs === 'object') {
    const type = (rs.rope_type ?? rs.type) as string | undefined;
    if (type === 'linear') ropeScaling = { type, factor: num(rs, 'factor') };
    else if (type === 'llama3') {
      ropeScaling = {
        type,
        factor: num(rs, 'factor'),
        lowFreqFactor: num(rs, 'low_freq_factor'),
        highFreqFactor: num(rs, 'high_freq_factor'),
        originalMaxPosition: num(rs, 'original_max_position_embeddings'),
      };
    } else if (type !== undefined && type !== 'default') throw bad(`rope_scaling type '${type}' is not supported (llama3, linear, default)`);
  }
  return {
    arch,
    vocab: int('vocab_size'),
    hidden,
    intermediate: int('intermediate_size'),
    layers: int('num_hidden_layers'),
    heads,
    kvHeads: int('num_key_value_heads', heads),
    headDim,
    maxPosition: int('max_position_embeddings', arch === 'llama' ? 2048 : 32768),
    rmsEps: num(c, 'rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling,
    tied: c.tie_word_embeddings === true,
    attentionBias: arch === 'qwen2' ? true : c.attention_bias === true,
    mlpBias: arch === 'llama' && c.mlp_bias === true,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Source tensors: the safetensors files of a directory (or one merged file), read by file offset.

interface SourceTensor {
  name: string;
  file: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  /** Absolute file offset of the first byte. */
  offset: number;
}

function safetensorsFiles(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const j = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (!j.weight_map || typeof j.weight_map !== 'object') throw new ModelFormatError('ERR_BAD_SAFETENSORS', `${index} has no weight_map`);
    return [...new Set(Object.values(j.weight_map))].map((f) => join(dir, f));
  }
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  throw new HayateError('ERR_NOT_FOUND', `${dir} has no model.safetensors or model.safetensors.index.json`);
}

function indexSources(files: readonly string[]): Map<string, SourceTensor> {
  const out = new Map<string, SourceTensor>();
  for (const file of files) {
    let entries;
    try {
      entries = native().inspectSafetensors(file);  // the engine's validating parser
    } catch (err) {
      throw fromNative(err);
    }
    const fd = openSync(file, 'r');
    const len = Buffer.alloc(8);
    try {
      readSync(fd, len, 0, 8, 0);
    } finally {
      closeSync(fd);
    }
    const dataStart = 8 + Number(len.readBigUInt64LE(0));
    for (const e of entries) {
      if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') throw new ModelFormatError('ERR_BAD_TENSOR', `${file}: tensor ${e.name} has dtype ${e.dtype}; GGUF export reads F32, F16 and BF16 weights`);
      out.set(e.name, { name: e.name, file, dtype: e.dtype, shape: e.shape, offset: dataStart + e.dataBegin });
    }
  }
  return out;
}

let f16Table: Float32Array | undefined;
function f16Values(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

const DTYPE_SIZE = { F32: 4, F16: 2, BF16: 2 } as const;

/** Reads `count` values of `src` from element `start` on, as float32. */
function readValues(fd: number, src: SourceTensor, start: number, count: number): Float32Array {
  const size = DTYPE_SIZE[src.dtype];
  const buf = new Uint8Array(count * size);
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, src.offset + start * size + done);
    if (n <= 0) throw new HayateError('ERR_IO', `${src.file}: unexpected end of file in tensor ${src.name}`);
    done += n;
  }
  if (src.dtype === 'F32') return new Float32Array(buf.buffer);
  const halves = new Uint16Array(buf.buffer);
  const out = new Float32Array(count);
  if (src.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
  } else {
    const table = f16Values();
    for (let i = 0; i < count; i++) out[i] = table[halves[i]];
  }
  return out;
}

function readBytes(fd: number, src: SourceTensor, start: number, count: number): Uint8Array {
  const size = DTYPE_SIZE[src.dtype];
  const buf = new Uint8Array(count * size);
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, src.offset + start * size + done);
    if (n <= 0) throw new HayateError('ERR_IO', `${src.file}: unexpected end of file in tensor ${src.name}`);
    done += n;
  }
  return buf;
}

/** Values per chunk read and converted at once. */
const CHUNK_VALUES = 1 << 20;

/**
 * The data of one tensor as chunks of whole rows; `headRows` set: rows permuted within each group of that
 * many rows as llama.cpp's converter does for LLaMA q/k ([2, half] -> [half, 2]: rotate-half pairs become
 * adjacent, the layout of its interleaved RoPE).
 */
function* tensorChunks(src: SourceTensor, type: GgmlTypeName, headRows?: number): Iterable<Float32Array | Uint8Array> {
  const rowLen = src.shape.length === 1 ? 1 : src.shape[src.shape.length - 1];
  const rows = src.shape.reduce((a, b) => a * b, 1) / rowLen;
  const fd = openSync(src.file, 'r');
  try {
    if (headRows !== undefined) {
      const half = headRows / 2;
      for (let r0 = 0; r0 < rows; r0 += headRows) {
        const v = readValues(fd, src, r0 * rowLen, headRows * rowLen);
        const out = new Float32Array(v.length);
        for (let j = 0; j < half; j++) {
          for (let c = 0; c < 2; c++) out.set(v.subarray((c * half + j) * rowLen, (c * half + j + 1) * rowLen), (2 * j + c) * rowLen);
        }
        yield out;
      }
      return;
    }
    const raw = type === src.dtype;
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - r0) * rowLen;
      yield raw ? readBytes(fd, src, r0 * rowLen, n) : readValues(fd, src, r0 * rowLen, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** llama.cpp's per-pair RoPE frequency factors for Llama 3.1-style scaling (the rope_freqs tensor). */
export function llama3RopeFactors(cfg: ExportConfig): Float32Array {
  const s = cfg.ropeScaling;
  if (s?.type !== 'llama3') throw new HayateError('ERR_INTERNAL', 'llama3RopeFactors needs llama3 rope scaling');
  const half = cfg.headDim / 2;
  const out = new Float32Array(half);
  const lowWavelen = s.originalMaxPosition / s.lowFreqFactor;
  const highWavelen = s.originalMaxPosition / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = 1 / cfg.ropeTheta ** ((2 * i) / cfg.headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPosition / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

function hyperParameters(cfg: ExportConfig, dtype: GgufDtype, name: string): Map<string, MetadataValue> {
  const a = cfg.arch;
  const m = new Map<string, MetadataValue>();
  m.set('general.architecture', { type: 'string', value: a });
  m.set('general.type', { type: 'string', value: 'model' });
  m.set('general.name', { type: 'string', value: name });
  m.set('general.file_type', { type: 'u32', value: FILE_TYPE[dtype.toUpperCase() as keyof typeof FILE_TYPE] });
  m.set('general.quantization_version', { type: 'u32', value: 2 });
  m.set('general.alignment', { type: 'u32', value: 32 });
  m.set(`${a}.vocab_size`, { type: 'u32', value: cfg.vocab });
  m.set(`${a}.context_length`, { type: 'u32', value: cfg.maxPosition });
  m.set(`${a}.embedding_length`, { type: 'u32', value: cfg.hidden });
  m.set(`${a}.block_count`, { type: 'u32', value: cfg.layers });
  m.set(`${a}.feed_forward_length`, { type: 'u32', value: cfg.intermediate });
  m.set(`${a}.attention.head_count`, { type: 'u32', value: cfg.heads });
  m.set(`${a}.attention.head_count_kv`, { type: 'u32', value: cfg.kvHeads });
  m.set(`${a}.attention.key_length`, { type: 'u32', value: cfg.headDim });
  m.set(`${a}.attention.value_length`, { type: 'u32', value: cfg.headDim });
  m.set(`${a}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: cfg.rmsEps });
  m.set(`${a}.rope.dimension_count`, { type: 'u32', value: cfg.headDim });
  m.set(`${a}.rope.freq_base`, { type: 'f32', value: cfg.ropeTheta });
  if (cfg.ropeScaling?.type === 'linear') {
    m.set(`${a}.rope.scaling.type`, { type: 'string', value: 'linear' });
    m.set(`${a}.rope.scaling.factor`, { type: 'f32', value: cfg.ropeScaling.factor });
  }
  return m;
}

interface Mapped {
  gguf: string;
  shape: number[];
  /** LLaMA q/k: rows permuted per head (head_dim rows). */
  permute?: boolean;
}

/** HF tensor name -> GGUF name and the shape config.json implies. */
function tensorMap(cfg: ExportConfig): Map<string, Mapped> {
  const { hidden: H, intermediate: I, heads, kvHeads, headDim: hd, vocab: V } = cfg;
  const m = new Map<string, Mapped>();
  m.set('model.embed_tokens.weight', { gguf: 'token_embd.weight', shape: [V, H] });
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}.`;
    const b = `blk.${l}.`;
    const perm = cfg.arch === 'llama';
    m.set(`${p}input_layernorm.weight`, { gguf: `${b}attn_norm.weight`, shape: [H] });
    m.set(`${p}self_attn.q_proj.weight`, { gguf: `${b}attn_q.weight`, shape: [heads * hd, H], permute: perm });
    m.set(`${p}self_attn.k_proj.weight`, { gguf: `${b}attn_k.weight`, shape: [kvHeads * hd, H], permute: perm });
    m.set(`${p}self_attn.v_proj.weight`, { gguf: `${b}attn_v.weight`, shape: [kvHeads * hd, H] });
    m.set(`${p}self_attn.o_proj.weight`, { gguf: `${b}attn_output.weight`, shape: [H, heads * hd] });
    if (cfg.attentionBias) {
      m.set(`${p}self_attn.q_proj.bias`, { gguf: `${b}attn_q.bias`, shape: [heads * hd], permute: perm });
      m.set(`${p}self_attn.k_proj.bias`, { gguf: `${b}attn_k.bias`, shape: [kvHeads * hd], permute: perm });
      m.set(`${p}self_attn.v_proj.bias`, { gguf: `${b}attn_v.bias`, shape: [kvHeads * hd] });
      if (cfg.arch !== 'qwen2') m.set(`${p}self_attn.o_proj.bias`, { gguf: `${b}attn_output.bias`, shape: [H] });
    }
    if (cfg.arch === 'qwen3') {
      m.set(`${p}self_attn.q_norm.weight`, { gguf: `${b}attn_q_norm.weight`, shape: [hd] });
      m.set(`${p}self_attn.k_norm.weight`, { gguf: `${b}attn_k_norm.weight`, shape: [hd] });
    }
    m.set(`${p}post_attention_layernorm.weight`, { gguf: `${b}ffn_norm.weight`, shape: [H] });
    m.set(`${p}mlp.gate_proj.weight`, { gguf: `${b}ffn_gate.weight`, shape: [I, H] });
    m.set(`${p}mlp.up_proj.weight`, { gguf: `${b}ffn_up.weight`, shape: [I, H] });
    m.set(`${p}mlp.down_proj.weight`, { gguf: `${b}ffn_down.weight`, shape: [H, I] });
    if (cfg.mlpBias) {
      m.set(`${p}mlp.gate_proj.bias`, { gguf: `${b}ffn_gate.bias`, shape: [I] });
      m.set(`${p}mlp.up_proj.bias`, { gguf: `${b}ffn_up.bias`, shape: [I] });
      m.set(`${p}mlp.down_proj.bias`, { gguf: `${b}ffn_down.bias`, shape: [H] });
    }
  }
  m.set('model.norm.weight', { gguf: 'output_norm.weight', shape: [H] });
  if (!cfg.tied) m.set('lm_head.weight', { gguf: 'output.weight', shape: [V, H] });
  return m;
}

/** Configurations hayate runs that llama.cpp's graphs for the architecture cannot express. */
function checkLlamaCppSupport(cfg: ExportConfig): void {
  const no = (what: string) => new ModelFormatError('ERR_UNSUPPORTED_ARCH', `llama.cpp's ${cfg.arch} model has no ${what}, so this model cannot be exported to GGUF`);
  if (cfg.arch === 'qwen3' && cfg.attentionBias) throw no('attention biases (attention_bias: true)');
  if (cfg.arch === 'qwen2' && cfg.headDim * cfg.heads !== cfg.hidden) throw no(`head_dim other than hidden_size / num_attention_heads (${cfg.headDim} * ${cfg.heads} != ${cfg.hidden})`);
  if (cfg.ropeScaling?.type === 'llama3' && cfg.arch !== 'llama') throw no('llama3 RoPE scaling (rope_freqs)');
}

function ggmlType(shape: readonly number[], dtype: GgufDtype): GgmlTypeName {
  if (shape.length === 1) return 'F32';
  switch (dtype) {
    case 'f32': return 'F32';
    case 'f16': return 'F16';
    case 'bf16': return 'BF16';
    case 'q8_0': return shape[shape.length - 1] % Q8_0_BLOCK === 0 ? 'Q8_0' : 'F16';  // as llama.cpp's converter falls back
  }
}

/** The GGUF tensors of a model whose weights are `sources`. */
function tensorPlans(cfg: ExportConfig, sources: Map<string, SourceTensor>, dtype: GgufDtype): TensorPlan[] {
  const map = tensorMap(cfg);
  for (const name of sources.keys()) {
    if (map.has(name) || name.endsWith('.rotary_emb.inv_freq')) continue;
    if (name === 'lm_head.weight' && cfg.tied) continue;  // tied: llama.cpp reuses token_embd
    throw new ModelFormatError('ERR_BAD_TENSOR', `unexpected tensor '${name}' for a ${cfg.arch} model (the GGUF export writes the tensors hayate's engine uses)`);
  }
  const plans: TensorPlan[] = [];
  if (cfg.ropeScaling?.type === 'llama3') {
    const factors = llama3RopeFactors(cfg);
    plans.push({ name: 'rope_freqs.weight', shape: [factors.length], type: 'F32', data: () => [factors] });
  }
  for (const [hfName, t] of map) {
    const src = sources.get(hfName);
    if (!src) throw new ModelFormatError('ERR_BAD_TENSOR', `the weights have no tensor '${hfName}'`);
    if (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i])) {
      throw new ModelFormatError('ERR_BAD_TENSOR', `tensor '${hfName}' has shape [${src.shape.join(', ')}], config.json implies [${t.shape.join(', ')}]`);
    }
    const type = ggmlType(t.shape, dtype);
    const headRows = t.permute ? cfg.headDim : undefined;
    plans.push({ name: t.gguf, shape: t.shape, type, data: () => tensorChunks(src, type, headRows) });
  }
  return plans;
}

/**
 * Writes `model` (a model directory, or a loaded Model whose attached LoRA adapters are merged) as a GGUF
 * file llama.cpp, Ollama and LM Studio load: `<arch>` hyper-parameters, llama.cpp's tensor names, the
 * tokenizer and chat template. With `adapter` (directory form), the adapter is loaded and merged first.
 */
export async function exportGguf(model: string | Model, outFile: string, options: GgufExportOptions = {}): Promise<GgufExportResult> {
  const dtype = options.dtype ?? 'f16';
  if (!(GGUF_DTYPES as readonly string[]).includes(dtype)) throw new HayateError('ERR_INVALID_ARGUMENT', `dtype must be one of ${GGUF_DTYPES.join(', ')}, got '${String(dtype)}'`);
  const dir = typeof model === 'string' ? model : model.dir;
  const cfg = readExportConfig(dir);
  checkLlamaCppSupport(cfg);
  const vocabMeta = tokenizerMetadata(dir, { vocabSize: cfg.vocab, preTokenizer: options.preTokenizer });
  if (existsSync(outFile) && !options.overwrite) throw new HayateError('ERR_INVALID_ARGUMENT', `${outFile} exists; pass overwrite (--overwrite) to replace it`);
  if (typeof model === 'string' && options.adapter !== undefined) {
    const loaded = await Model.load(model, { threads: options.threads });
    try {
      await loadAdapter(loaded, options.adapter);
      return await exportGguf(loaded, outFile, { ...options, adapter: undefined });
    } finally {
      await loaded.dispose();
    }
  }
  if (typeof model !== 'string' && options.adapter !== undefined) {
    throw new HayateError('ERR_INVALID_ARGUMENT', 'adapter is for a model directory; a loaded Model is exported with the adapters attached to it');
  }
  const name = options.name ?? basename(resolve(dir));

  const merge = typeof model !== 'string' && model.lora !== null;
  mkdirSync(dirname(resolve(outFile)), { recursive: true });
  let tmpDir: string | undefined;
  try {
    let files: string[];
    if (merge) {
      tmpDir = mkdtempSync(join(dirname(resolve(outFile)), '.hayate-gguf-merge-'));
      const merged = join(tmpDir, 'model.safetensors');
      await model.runNative(undefined, (handle) => handle.saveMerged(model.dir, merged));
      files = [merged];
    } else {
      files = safetensorsFiles(dir);
    }
    const sources = indexSources(files);
    const plans = tensorPlans(cfg, sources, dtype);
    const meta = hyperParameters(cfg, dtype, name);
    for (const [k, v] of vocabMeta) meta.set(k, v);
    writeGguf(outFile, meta, plans, (tensor, i) => options.onProgress?.({ tensor, done: i + 1, total: plans.length }));
    const bytes = statSync(outFile).size;
    return { path: outFile, architecture: cfg.arch, dtype, tensors: plans.length, bytes, merged: merge };
  } finally {
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }
}
