// Reference forward pass of Hugging Face LLaMA / Qwen2 / Qwen3 causal LMs in float64, written from
// transformers' modeling_llama.py, modeling_qwen2.py and modeling_qwen3.py. It exists to check the native
// engine's logits: plain loops over one sequence, no caching, no cleverness; speed does not matter.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { floatData, readSafetensorsDir, type ReadTensor } from '../../ts/safetensors.js';

export type ReferenceArch = 'llama' | 'qwen2' | 'qwen3';

export interface ReferenceConfig {
  arch: ReferenceArch;
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Record<string, unknown> | null;
  tied: boolean;
  /** q/k/v projections have biases (Qwen2 always; LLaMA and Qwen3 when attention_bias). */
  qkvBias: boolean;
  /** o_proj has a bias (LLaMA and Qwen3 when attention_bias; never Qwen2). */
  oBias: boolean;
  /** Qwen3: RMSNorm over head_dim on each query and key head, before RoPE. */
  qkNorm: boolean;
}

const ARCHS: Record<string, ReferenceArch> = { LlamaForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', Qwen3ForCausalLM: 'qwen3' };

/** Reads config.json with transformers' defaults for missing fields. */
export function parseReferenceConfig(json: Record<string, unknown>): ReferenceConfig {
  const archName = (json.architectures as string[] | undefined)?.[0] ?? '';
  const arch = ARCHS[archName];
  if (!arch) throw new Error(`reference model: unsupported architecture '${archName}'`);
  const num = (key: string, fallback?: number): number => {
    const v = json[key];
    if (typeof v === 'number') return v;
    if (fallback !== undefined) return fallback;
    throw new Error(`reference model: config.json lacks ${key}`);
  };
  const hidden = num('hidden_size');
  const heads = num('num_attention_heads');
  const attentionBias = json.attention_bias === true;
  if (json.mlp_bias === true) throw new Error('reference model: mlp_bias is not supported');
  return {
    arch,
    vocabSize: num('vocab_size'),
    hidden,
    intermediate: num('intermediate_size'),
    layers: num('num_hidden_layers'),
    heads,
    kvHeads: num('num_key_value_heads', heads),
    headDim: typeof json.head_dim === 'number' ? json.head_dim : hidden / heads,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    ropeScaling: (json.rope_scaling as Record<string, unknown> | null | undefined) ?? null,
    tied: json.tie_word_embeddings === true,
    qkvBias: arch === 'qwen2' || attentionBias,
    oBias: arch !== 'qwen2' && attentionBias,
    qkNorm: arch === 'qwen3',
  };
}

/**
 * RoPE inverse frequencies, 1 / theta^(2i / head_dim), with rope scaling applied as transformers'
 * _compute_linear_scaling_rope_parameters / _compute_llama3_parameters do.
 */
export function ropeInvFreq(cfg: ReferenceConfig): number[] {
  const hd = cfg.headDim;
  const inv: number[] = [];
  for (let i = 0; i < hd; i += 2) inv.push(1 / Math.pow(cfg.ropeTheta, i / hd));
  const rs = cfg.ropeScaling;
  const type = rs ? String(rs.rope_type ?? rs.type ?? 'default') : 'default';
  if (type === 'default') return inv;
  const factor = Number(rs!.factor);
  if (type === 'linear') return inv.map((f) => f / factor);
  if (type !== 'llama3') throw new Error(`reference model: unsupported rope scaling '${type}'`);
  const low = Number(rs!.low_freq_factor ?? 1);
  const high = Number(rs!.high_freq_factor ?? 4);
  const oldContext = Number(rs!.original_max_position_embeddings ?? 8192);
  const lowFreqWavelen = oldContext / low;
  const highFreqWavelen = oldContext / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f; // high frequencies: unchanged
    if (wavelen > lowFreqWavelen) return f / factor; // low frequencies: scaled like linear
    const smooth = (oldContext / wavelen - low) / (high - low); // in between: interpolate
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** A weight matrix [rows, cols] in row-major order (rows = out features for linear layers). */
interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

interface LayerWeights {
  inputNorm: Float64Array;
  q: Matrix;
  k: Matrix;
  v: Matrix;
  o: Matrix;
  qBias?: Float64Array;
  kBias?: Float64Array;
  vBias?: Float64Array;
  oBias?: Float64Array;
  qNorm?: Float64Array;
  kNorm?: Float64Array;
  postNorm: Float64Array;
  gate: Matrix;
  up: Matrix;
  down: Matrix;
}

// ---------------------------------------------------------------------------------------------------------
// The math, one vector at a time.

/** x / sqrt(mean(x^2) + eps) * w */
export function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * scale * w[i];
  return out;
}

/** nn.Linear: y = W x + b, W of shape [out, in]. */
function linear(m: Matrix, x: Float64Array, bias?: Float64Array): Float64Array {
  const y = new Float64Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    let s = bias ? bias[r] : 0;
    const row = r * m.cols;
    for (let c = 0; c < m.cols; c++) s += m.data[row + c] * x[c];
    y[r] = s;
  }
  return y;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** apply_rotary_pos_emb on one head: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1). */
function rope(head: Float64Array, pos: number, invFreq: number[]): Float64Array {
  const half = head.length / 2;
  const out = new Float64Array(head.length);
  for (let i = 0; i < half; i++) {
    const angle = pos * invFreq[i];
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    out[i] = head[i] * cos - head[i + half] * sin;
    out[i + half] = head[i + half] * cos + head[i] * sin;
  }
  return out;
}

/** Splits a projection output into heads of head_dim values. */
function heads(x: Float64Array, n: number, hd: number): Float64Array[] {
  const out: Float64Array[] = [];
  for (let h = 0; h < n; h++) out.push(x.slice(h * hd, (h + 1) * hd));
  return out;
}

export class ReferenceModel {
  readonly config: ReferenceConfig;
  private readonly embed: Matrix;
  private readonly lmHead: Matrix;
  private readonly finalNorm: Float64Array;
  private readonly layerWeights: LayerWeights[];
  private readonly invFreq: number[];

  constructor(config: ReferenceConfig, weights: Map<string, ReadTensor>) {
    this.config = config;
    const { hidden: D, intermediate: F, heads: H, kvHeads: Hkv, headDim: hd, vocabSize: V } = config;
    const vec = (name: string, len: number): Float64Array => {
      const t = weights.get(name);
      if (!t) throw new Error(`reference model: missing tensor ${name}`);
      if (t.shape.length !== 1 || t.shape[0] !== len) throw new Error(`reference model: ${name} has shape ${JSON.stringify(t.shape)}, expected [${len}]`);
      return floatData(t, name);
    };
    const mat = (name: string, rows: number, cols: number): Matrix => {
      const t = weights.get(name);
      if (!t) throw new Error(`reference model: missing tensor ${name}`);
      if (t.shape.length !== 2 || t.shape[0] !== rows || t.shape[1] !== cols) {
        throw new Error(`reference model: ${name} has shape ${JSON.stringify(t.shape)}, expected [${rows},${cols}]`);
      }
      return { rows, cols, data: floatData(t, name) };
    };
    this.embed = mat('model.embed_tokens.weight', V, D);
    this.lmHead = config.tied ? this.embed : mat('lm_head.weight', V, D);
    this.finalNorm = vec('model.norm.weight', D);
    this.layerWeights = [];
    for (let i = 0; i < config.layers; i++) {
      const p = `model.layers.${i}.`;
      const lw: LayerWeights = {
        inputNorm: vec(`${p}input_layernorm.weight`, D),
        q: mat(`${p}self_attn.q_proj.weight`, H * hd, D),
        k: mat(`${p}self_attn.k_proj.weight`, Hkv * hd, D),
        v: mat(`${p}self_attn.v_proj.weight`, Hkv * hd, D),
        o: mat(`${p}self_attn.o_proj.weight`, D, H * hd),
        postNorm: vec(`${p}post_attention_layernorm.weight`, D),
        gate: mat(`${p}mlp.gate_proj.weight`, F, D),
        up: mat(`${p}mlp.up_proj.weight`, F, D),
        down: mat(`${p}mlp.down_proj.weight`, D, F),
      };
      if (config.qkvBias) {
        lw.qBias = vec(`${p}self_attn.q_proj.bias`, H * hd);
        lw.kBias = vec(`${p}self_attn.k_proj.bias`, Hkv * hd);
        lw.vBias = vec(`${p}self_attn.v_proj.bias`, Hkv * hd);
      }
      if (config.oBias) lw.oBias = vec(`${p}self_attn.o_proj.bias`, D);
      if (config.qkNorm) {
        lw.qNorm = vec(`${p}self_attn.q_norm.weight`, hd);
        lw.kNorm = vec(`${p}self_attn.k_norm.weight`, hd);
      }
      this.layerWeights.push(lw);
    }
    this.invFreq = ropeInvFreq(config);
  }

  /** Next-token logits for every position of `tokens` (positions 0..L-1): one vocab-sized row each. */
  logits(tokens: number[]): Float64Array[] {
    const cfg = this.config;
    let xs: Float64Array[] = tokens.map((t) => {
      if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) throw new Error(`reference model: token ${t} outside the vocabulary`);
      return this.embed.data.slice(t * cfg.hidden, (t + 1) * cfg.hidden);
    });
    for (const lw of this.layerWeights) xs = this.layer(lw, xs);
    return xs.map((x) => linear(this.lmHead, rmsNorm(x, this.finalNorm, cfg.rmsNormEps)));
  }

  /** One decoder layer over the whole sequence: x + attn(norm(x)), then h + mlp(norm(h)). */
  private layer(lw: LayerWeights, xs: Float64Array[]): Float64Array[] {
    const { heads: H, kvHeads: Hkv, headDim: hd, rmsNormEps: eps } = this.config;
    const groups = H / Hkv;
    const qs: Float64Array[][] = [];
    const ks: Float64Array[][] = [];
    const vs: Float64Array[][] = [];
    xs.forEach((x, pos) => {
      const h = rmsNorm(x, lw.inputNorm, eps);
      let q = heads(linear(lw.q, h, lw.qBias), H, hd);
      let k = heads(linear(lw.k, h, lw.kBias), Hkv, hd);
      if (lw.qNorm && lw.kNorm) {
        q = q.map((head) => rmsNorm(head, lw.qNorm!, eps));
        k = k.map((head) => rmsNorm(head, lw.kNorm!, eps));
      }
      qs.push(q.map((head) => rope(head, pos, this.invFreq)));
      ks.push(k.map((head) => rope(head, pos, this.invFreq)));
      vs.push(heads(linear(lw.v, h, lw.vBias), Hkv, hd));
    });

    const scale = 1 / Math.sqrt(hd);
    return xs.map((x, t) => {
      // Causal softmax attention of position t over positions 0..t; query head h reads kv head h / groups.
      const attn = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / groups);
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[t][h][i] * ks[s][kvh][i];
          scores.push(dot * scale);
        }
        const max = Math.max(...scores);
        const exps = scores.map((v) => Math.exp(v - max));
        const sum = exps.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          const p = exps[s] / sum;
          for (let i = 0; i < hd; i++) attn[h * hd + i] += p * vs[s][kvh][i];
        }
      }
      const afterAttn = add(x, linear(lw.o, attn, lw.oBias));
      const h2 = rmsNorm(afterAttn, lw.postNorm, eps);
      const gate = linear(lw.gate, h2);
      const up = linear(lw.up, h2);
      const act = gate.map((g, i) => silu(g) * up[i]);
      return add(afterAttn, linear(lw.down, act));
    });
  }
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** Loads config.json and the safetensors weights (single file or sharded) of a model directory. */
export function loadReferenceModel(dir: string): ReferenceModel {
  const config = parseReferenceConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  return new ReferenceModel(config, readSafetensorsDir(dir));
}
