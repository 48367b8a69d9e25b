// GGUF export, read back with @huggingface/gguf (a parser hayate did not write): the metadata llama.cpp
// needs for LLaMA, Qwen2 and Qwen3, the tensor names, shapes and types, the values in f32, f16, bf16 and q8_0,
// the LLaMA q/k permutation, the tokenizer (real Qwen3 vocabulary, merges, token types, special ids, chat
// template), the CLI, and the errors for what llama.cpp cannot load. tests/llama-cpp.test.ts runs the files
// in llama.cpp itself.
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HayateError } from '../ts/errors.js';
import { dequantizeQ8_0, f16ToF32, f32ToBf16, f32ToF16 } from '../ts/export/gguf-format.js';
import { exportGguf } from '../ts/export/index.js';
import { f32ToBf16Bits, f32ToF16Bits, readSafetensors } from '../ts/safetensors.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

type Parsed = Awaited<ReturnType<typeof readGguf>>;

async function readGguf(path: string) {
  const { metadata, tensorInfos, tensorDataOffset } = await gguf(path, { allowLocalFile: true });
  const meta = metadata as unknown as Record<string, unknown>;
  const infos = new Map(tensorInfos.map((t) => [t.name, t]));
  /** The raw bytes of one tensor. */
  const bytes = (name: string, size: number): Uint8Array => {
    const info = infos.get(name);
    if (!info) throw new Error(`no tensor ${name}`);
    const buf = new Uint8Array(size);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buf, 0, size, Number(tensorDataOffset + info.offset));
    } finally {
      closeSync(fd);
    }
    return buf;
  };
  const shape = (name: string) => infos.get(name)?.shape.map(Number);
  const f32 = (name: string, n: number) => new Float32Array(bytes(name, 4 * n).buffer);
  return { meta, infos, bytes, shape, f32 };
}

const sources = new Map<string, ReturnType<typeof readSafetensors>>();

/** Values of a safetensors tensor as a Float64Array. */
function source(dir: string, name: string): Float64Array {
  if (!sources.has(dir)) sources.set(dir, readSafetensors(join(dir, 'model.safetensors')));
  const t = sources.get(dir)?.get(name);
  if (!t) throw new Error(`no source tensor ${name}`);
  return t.data as Float64Array;
}

describe('GGUF export: Qwen3 with the real Qwen3 tokenizer', () => {
  let dir: string;
  let file: string;
  let g: Parsed;

  beforeAll(async () => {
    dir = await makeModel({ arch: 'qwen3', tokenizer: 'qwen3' });
    file = join(tempDir(), 'qwen3.gguf');
    const r = await exportGguf(dir, file, { dtype: 'f32', name: 'tiny-qwen3' });
    expect(r).toMatchObject({ architecture: 'qwen3', dtype: 'f32', merged: false, tensors: 2 + 2 * 11 });
    g = await readGguf(file);
  }, 60_000);

  it('writes the architecture, hyper-parameters and file type llama.cpp reads', () => {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(g.meta['general.architecture']).toBe('qwen3');
    expect(g.meta['general.name']).toBe('tiny-qwen3');
    expect(g.meta['general.file_type']).toBe(0);
    expect(g.meta['general.alignment']).toBe(32);
    expect(g.meta['qwen3.block_count']).toBe(cfg.num_hidden_layers);
    expect(g.meta['qwen3.context_length']).toBe(cfg.max_position_embeddings);
    expect(g.meta['qwen3.embedding_length']).toBe(cfg.hidden_size);
    expect(g.meta['qwen3.feed_forward_length']).toBe(cfg.intermediate_size);
    expect(g.meta['qwen3.attention.head_count']).toBe(cfg.num_attention_heads);
    expect(g.meta['qwen3.attention.head_count_kv']).toBe(cfg.num_key_value_heads);
    expect(g.meta['qwen3.attention.key_length']).toBe(cfg.head_dim);
    expect(g.meta['qwen3.attention.value_length']).toBe(cfg.head_dim);
    expect(g.meta['qwen3.rope.freq_base']).toBe(cfg.rope_theta);
    expect(g.meta['qwen3.attention.layer_norm_rms_epsilon']).toBeCloseTo(cfg.rms_norm_eps, 12);
    expect(g.meta['qwen3.vocab_size']).toBe(cfg.vocab_size);
  });

  it('names every tensor as llama.cpp does, with ggml shapes (innermost first); tied: no output tensor', () => {
    const names = [...g.infos.keys()].sort();
    const want = ['token_embd.weight', 'output_norm.weight'];
    for (let l = 0; l < 2; l++) {
      for (const t of ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down']) want.push(`blk.${l}.${t}.weight`);
    }
    expect(names).toEqual(want.sort());
    expect(g.shape('token_embd.weight')).toEqual([64, 151936]);
    expect(g.shape('blk.0.attn_q.weight')).toEqual([64, 4 * 16]);
    expect(g.shape('blk.0.attn_k.weight')).toEqual([64, 2 * 16]);
    expect(g.shape('blk.0.attn_output.weight')).toEqual([4 * 16, 64]);
    expect(g.shape('blk.0.ffn_down.weight')).toEqual([128, 64]);
    expect(g.shape('blk.0.attn_q_norm.weight')).toEqual([16]);
    for (const t of g.infos.values()) expect(t.dtype).toBe(GGMLQuantizationType.F32);
  });

  it('keeps the f32 values exactly (Qwen q/k are not permuted)', () => {
    for (const [hf, name] of [['model.layers.1.self_attn.q_proj.weight', 'blk.1.attn_q.weight'], ['model.layers.0.mlp.down_proj.weight', 'blk.0.ffn_down.weight'], ['model.layers.0.self_attn.k_norm.weight', 'blk.0.attn_k_norm.weight']]) {
      const want = source(dir, hf);
      expect(Array.from(g.f32(name, want.length)), name).toEqual(Array.from(want));
    }
  });

  it('carries the tokenizer: byte-level BPE with the qwen2 pre-tokenizer, merges, token types, special ids, chat template', () => {
    const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(g.meta['tokenizer.ggml.model']).toBe('gpt2');
    expect(g.meta['tokenizer.ggml.pre']).toBe('qwen2');
    const tokens = g.meta['tokenizer.ggml.tokens'] as string[];
    const types = g.meta['tokenizer.ggml.token_type'] as number[];
    expect(tokens.length).toBe(151936);
    for (const [tok, id] of Object.entries(tj.model.vocab as Record<string, number>).slice(0, 2000)) expect(tokens[id]).toBe(tok);
    expect(tokens[tj.model.vocab['Ġthe']]).toBe('Ġthe');
    expect(types[tj.model.vocab['Ġthe']]).toBe(1);
    const id = (s: string) => tj.added_tokens.find((a: { content: string }) => a.content === s).id as number;
    expect(tokens[id('<|im_end|>')]).toBe('<|im_end|>');
    expect(types[id('<|im_end|>')]).toBe(3);  // control
    expect(types[id('<think>')]).toBe(4);  // user-defined: added, not special
    expect(tokens[151935]).toBe('[PAD151935]');  // embedding rows past the tokenizer
    expect(types[151935]).toBe(5);
    const merges = g.meta['tokenizer.ggml.merges'] as string[];
    expect(merges.length).toBe(tj.model.merges.length);
    expect(merges[0]).toBe((tj.model.merges[0] as string[]).join(' '));
    expect(g.meta['tokenizer.ggml.eos_token_id']).toBe(id(tc.eos_token));
    expect(g.meta['tokenizer.ggml.padding_token_id']).toBe(id(tc.pad_token));
    expect(g.meta['tokenizer.ggml.bos_token_id']).toBe(cfg.bos_token_id);
    expect(g.meta['tokenizer.ggml.add_bos_token']).toBe(false);
    expect(g.meta['tokenizer.chat_template']).toBe(tc.chat_template);
  });
});

describe('GGUF export: LLaMA and Qwen2', () => {
  it('LLaMA: q/k rows permuted per head as llama.cpp\'s converter does, untied output, biases, llama3 RoPE factors, head_dim != hidden/heads', async () => {
    const ropeScaling = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 };
    const dir = await makeModel({ arch: 'llama', tied: false, attentionBias: true, headDim: 24, ropeScaling });
    const file = join(tempDir(), 'llama.gguf');
    await exportGguf(dir, file, { dtype: 'f32' });
    const g = await readGguf(file);
    expect(g.meta['general.architecture']).toBe('llama');
    expect(g.meta['llama.attention.key_length']).toBe(24);
    expect(g.meta['llama.rope.dimension_count']).toBe(24);
    expect(g.meta['tokenizer.ggml.pre']).toBe('gpt-2');  // the tiny tokenizer is GPT-2 byte-level
    expect(g.shape('output.weight')).toEqual([64, g.meta['llama.vocab_size']]);
    expect(g.shape('blk.0.attn_q.weight')).toEqual([64, 4 * 24]);
    expect(g.shape('blk.1.attn_output.bias')).toEqual([64]);
    // rope_freqs: 1 for short wavelengths (< 64 / 4 positions), `factor` for long ones (> 64), smooth between
    const freqs = Array.from(g.f32('rope_freqs.weight', 12));
    expect(freqs[0]).toBe(1);
    expect(freqs[11]).toBe(8);
    for (let i = 1; i < 12; i++) expect(freqs[i]).toBeGreaterThanOrEqual(freqs[i - 1]);
    // q (4 heads) and k (2 heads): within each head of 24 rows, row 2j + c holds source row c * 12 + j
    for (const [proj, name, heads] of [['q_proj', 'attn_q', 4], ['k_proj', 'attn_k', 2]] as const) {
      const w = source(dir, `model.layers.1.self_attn.${proj}.weight`);
      const got = g.f32(`blk.1.${name}.weight`, w.length);
      const b = source(dir, `model.layers.1.self_attn.${proj}.bias`);
      const gotB = g.f32(`blk.1.${name}.bias`, b.length);
      for (let h = 0; h < heads; h++) {
        for (let j = 0; j < 12; j++) {
          for (let c = 0; c < 2; c++) {
            const dst = h * 24 + 2 * j + c;
            const src = h * 24 + c * 12 + j;
            expect(Array.from(got.subarray(dst * 64, dst * 64 + 64))).toEqual(Array.from(w.subarray(src * 64, src * 64 + 64)));
            expect(gotB[dst]).toBe(b[src]);
          }
        }
      }
    }
    const v = source(dir, 'model.layers.0.self_attn.v_proj.weight');  // v is not permuted
    expect(Array.from(g.f32('blk.0.attn_v.weight', v.length))).toEqual(Array.from(v));
  });

  it('Qwen2: q/k/v biases and no o bias, linear RoPE scaling as metadata', async () => {
    const dir = await makeModel({ arch: 'qwen2', ropeScaling: { type: 'linear', factor: 4 } });
    const file = join(tempDir(), 'qwen2.gguf');
    await exportGguf(dir, file, { dtype: 'f16' });
    const g = await readGguf(file);
    expect(g.meta['general.architecture']).toBe('qwen2');
    expect(g.meta['general.file_type']).toBe(1);
    expect(g.meta['qwen2.rope.scaling.type']).toBe('linear');
    expect(g.meta['qwen2.rope.scaling.factor']).toBe(4);
    const names = [...g.infos.keys()];
    expect(names).toContain('blk.0.attn_q.bias');
    expect(names).toContain('blk.0.attn_v.bias');
    expect(names).not.toContain('blk.0.attn_output.bias');
    expect(names).not.toContain('blk.0.attn_q_norm.weight');
    expect(names).not.toContain('output.weight');
    expect(g.infos.get('blk.0.attn_q.bias')?.dtype).toBe(GGMLQuantizationType.F32);  // 1-D tensors stay f32
    expect(g.infos.get('blk.0.attn_q.weight')?.dtype).toBe(GGMLQuantizationType.F16);
  });
});

describe('GGUF export: weight types', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeModel({ arch: 'qwen3' });
  });

  it('f32 -> f16 and bf16 conversions round to nearest even like the engine\'s own converters', () => {
    const values = [0, -0, 1, -1, 65504, 65520, 65519.99, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.14159, Infinity, -Infinity];
    let s = 12345;
    for (let i = 0; i < 20000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      values.push(((s / 2 ** 32) - 0.5) * 2 ** ((s % 60) - 30));
    }
    for (const v of values) {
      expect(f32ToF16(v), `f16 ${v}`).toBe(f32ToF16Bits(v));
      expect(f32ToBf16(v), `bf16 ${v}`).toBe(f32ToBf16Bits(v));
    }
    expect(f32ToF16(NaN) & 0x7c00).toBe(0x7c00);
    expect(f16ToF32(f32ToF16(0.333))).toBeCloseTo(0.333, 3);
  });

  it('bf16, f16 and q8_0 files: matrices converted, norms kept f32, q8_0 within half a step of each value', async () => {
    const out = tempDir();
    const q = source(dir, 'model.layers.0.self_attn.q_proj.weight');
    for (const [dtype, type, fileType] of [['bf16', GGMLQuantizationType.BF16, 32], ['f16', GGMLQuantizationType.F16, 1], ['q8_0', GGMLQuantizationType.Q8_0, 7]] as const) {
      const file = join(out, `${dtype}.gguf`);
      await exportGguf(dir, file, { dtype });
      const g = await readGguf(file);
      expect(g.meta['general.file_type']).toBe(fileType);
      for (const [name, t] of g.infos) expect(t.dtype, name).toBe(name.endsWith('norm.weight') ? GGMLQuantizationType.F32 : type);
      if (dtype === 'q8_0') {
        const bytes = g.bytes('blk.0.attn_q.weight', (q.length / 32) * 34);
        const deq = dequantizeQ8_0(bytes);
        for (let b = 0; b < q.length / 32; b++) {
          let amax = 0;
          for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(q[b * 32 + j]));
          const d = f16ToF32(bytes[b * 34] | (bytes[b * 34 + 1] << 8));
          expect(d).toBe(f16ToF32(f32ToF16Bits(Math.fround(amax / 127))));
          for (let j = 0; j < 32; j++) expect(Math.abs(deq[b * 32 + j] - q[b * 32 + j])).toBeLessThanOrEqual(d / 2 + amax * 2 ** -10);
        }
      } else {
        const bits = new Uint16Array(g.bytes('blk.0.attn_q.weight', 2 * q.length).buffer);
        const conv = dtype === 'bf16' ? f32ToBf16Bits : f32ToF16Bits;
        for (let i = 0; i < q.length; i += 7) expect(bits[i]).toBe(conv(q[i]));
      }
    }
  });

  it('bf16 weights exported at bf16 are copied bit for bit', async () => {
    const bdir = await makeModel({ arch: 'qwen3', dtype: 'BF16' });
    const file = join(tempDir(), 'b.gguf');
    await exportGguf(bdir, file, { dtype: 'bf16' });
    const g = await readGguf(file);
    const w = source(bdir, 'model.layers.1.mlp.up_proj.weight');
    const bits = new Uint16Array(g.bytes('blk.1.ffn_up.weight', 2 * w.length).buffer);
    for (let i = 0; i < w.length; i++) expect(bits[i]).toBe(f32ToBf16Bits(w[i]));
  });
});

describe('GGUF export: refusals', () => {
  it('refuses to overwrite without overwrite, unknown dtypes, and what llama.cpp cannot load', async () => {
    const dir = await makeModel({ arch: 'qwen3' });
    const file = join(tempDir(), 'x.gguf');
    writeFileSync(file, 'x');
    await expect(exportGguf(dir, file)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await exportGguf(dir, file, { overwrite: true });
    expect(readFileSync(file).subarray(0, 4).toString()).toBe('GGUF');
    await expect(exportGguf(dir, file, { overwrite: true, dtype: 'q4' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });

    const biased = await makeModel({ arch: 'qwen3', attentionBias: true });
    await expect(exportGguf(biased, join(tempDir(), 'b.gguf'))).rejects.toThrow(/attention biases/);
    const wide = await makeModel({ arch: 'qwen2', headDim: 24 });
    await expect(exportGguf(wide, join(tempDir(), 'w.gguf'))).rejects.toThrow(/head_dim/);

    // a pre-tokenizer llama.cpp does not know by name: refused, unless named by the caller
    const odd = tempDir();
    cpSync(dir, odd, { recursive: true });
    const tj = JSON.parse(readFileSync(join(odd, 'tokenizer.json'), 'utf8'));
    tj.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] };
    writeFileSync(join(odd, 'tokenizer.json'), JSON.stringify(tj));
    const err = await exportGguf(odd, join(odd, 'o.gguf')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HayateError);
    expect(err).toMatchObject({ code: 'ERR_TOKENIZER' });
    await exportGguf(odd, join(odd, 'o.gguf'), { preTokenizer: 'gpt-2' });
    expect((await readGguf(join(odd, 'o.gguf'))).meta['tokenizer.ggml.pre']).toBe('gpt-2');
    rmSync(join(odd, 'tokenizer.json'));
    await expect(exportGguf(odd, join(odd, 'p.gguf'))).rejects.toMatchObject({ code: 'ERR_TOKENIZER' });
    expect(existsSync(join(odd, 'p.gguf'))).toBe(false);
  });
});

describe('hayate export (CLI)', () => {
  const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
  it.skipIf(!existsSync(cli))('writes a GGUF file and rejects a bad --dtype with exit code 2', async () => {
    const dir = await makeModel({ arch: 'llama' });
    const file = join(tempDir(), 'cli.gguf');
    const r = spawnSync(process.execPath, [cli, 'export', dir, '-o', file, '--dtype', 'q8_0'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote .*cli\.gguf: llama, q8_0, \d+ tensors/);
    expect((await readGguf(file)).meta['general.file_type']).toBe(7);
    const bad = spawnSync(process.execPath, [cli, 'export', dir, '-o', file, '--dtype', 'q4_k'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--dtype/);
    const exists = spawnSync(process.execPath, [cli, 'export', dir, '-o', file], { encoding: 'utf8' });
    expect(exists.status).toBe(2);
    expect(exists.stderr).toMatch(/exists; pass overwrite \(--overwrite\)/);
  });
});
