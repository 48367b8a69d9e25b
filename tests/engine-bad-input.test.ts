// Bad input gives one clear, typed error naming the file and the cause; never a crash of the process.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, HayateError, ModelFormatError } from '../ts/errors.js';
import { Model } from '../ts/model.js';
import { native } from '../ts/native.js';
import { writeSafetensors } from '../ts/safetensors.js';
import { cleanupTempDirs, makeModel, randomTokens, tempDir } from './helpers.js';

let good: string;  // a valid model directory to copy and break

beforeAll(async () => {
  good = await makeModel({ arch: 'qwen3', maxPosition: 64 });
});
afterAll(cleanupTempDirs);

/** A copy of the good model dir with `mutate` applied. */
function broken(mutate: (dir: string) => void): string {
  const dir = tempDir();
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
    if (existsSync(join(good, f))) copyFileSync(join(good, f), join(dir, f));
  mutate(dir);
  return dir;
}

async function loadError(dir: string): Promise<HayateError> {
  try {
    const m = await Model.load(dir);
    await m.dispose();
  } catch (err) {
    expect(err).toBeInstanceOf(HayateError);
    return err as HayateError;
  }
  throw new Error(`loading ${dir} did not fail`);
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
}

/** Rewrites model.safetensors' header with `edit` applied; offsets are relative to the data section, so
 * the data stays valid whatever the new header's length. */
function editHeader(dir: string, edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): void {
  const path = join(dir, 'model.safetensors');
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length), 0);
  writeFileSync(path, Buffer.concat([len, text, bytes.subarray(8 + n)]));
}

describe('bad model directories', () => {
  it('missing directory', async () => {
    const e = await loadError('/nonexistent/hayate-model');
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.message).toContain('/nonexistent/hayate-model');
  });

  it('missing config.json', async () => {
    const e = await loadError(broken((d) => rmSync(join(d, 'config.json'))));
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.message).toContain('config.json');
  });

  it('malformed config.json', async () => {
    const e = await loadError(broken((d) => writeFileSync(join(d, 'config.json'), '{"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64,')));
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.code).toBe('ERR_BAD_CONFIG');
    expect(e.message).toContain('config.json');
  });

  it('inconsistent config values', async () => {
    const e = await loadError(broken((d) => editConfig(d, (c) => { c.num_attention_heads = 3; c.num_key_value_heads = 2; })));
    expect(e.code).toBe('ERR_BAD_CONFIG');
    const e2 = await loadError(broken((d) => editConfig(d, (c) => { c.hidden_size = -64; })));
    expect(e2.code).toBe('ERR_BAD_CONFIG');
    expect(e2.message).toContain('hidden_size');
  });

  it('unsupported architecture', async () => {
    const e = await loadError(broken((d) => editConfig(d, (c) => { c.architectures = ['GPT2LMHeadModel']; c.model_type = 'gpt2'; })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('GPT2LMHeadModel');
  });

  it('safetensors with a truncated body', async () => {
    const e = await loadError(broken((d) => {
      const p = join(d, 'model.safetensors');
      const b = readFileSync(p);
      writeFileSync(p, b.subarray(0, b.length - 100));
    }));
    expect(e.code).toBe('ERR_BAD_SAFETENSORS');
    expect(e.message).toContain('model.safetensors');
  });

  it('safetensors offsets past the end', async () => {
    const e = await loadError(broken((d) => editHeader(d, (h) => {
      const t = h['model.norm.weight'];
      t.data_offsets = [t.data_offsets[0] + 10_000_000, t.data_offsets[1] + 10_000_000];
    })));
    expect(e.code).toBe('ERR_BAD_SAFETENSORS');
  });

  it('safetensors header larger than the file', async () => {
    const e = await loadError(broken((d) => {
      const p = join(d, 'model.safetensors');
      const b = readFileSync(p);
      b.writeBigUInt64LE(BigInt(b.length * 2), 0);
      writeFileSync(p, b);
    }));
    expect(e.code).toBe('ERR_BAD_SAFETENSORS');
    expect(e.message).toContain('model.safetensors');
  });

  it('wrong dtype, wrong shape and missing tensors', async () => {
    const dtype = await loadError(broken((d) => editHeader(d, (h) => {
      const t = h['model.norm.weight'];
      t.dtype = 'I32';  // same byte size as F32, so only the dtype is wrong
    })));
    expect(dtype.code).toBe('ERR_BAD_TENSOR');
    expect(dtype.message).toContain('model.norm.weight');

    const shape = await loadError(broken((d) => editHeader(d, (h) => {
      const t = h['model.norm.weight'];
      t.shape = [t.shape[0] / 2, 2];
    })));
    expect(shape.code).toBe('ERR_BAD_TENSOR');
    expect(shape.message).toContain('model.norm.weight');

    const missing = await loadError(broken((d) => {
      writeSafetensors(join(d, 'model.safetensors'), [{ name: 'unrelated', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
    }));
    expect(missing.code).toBe('ERR_BAD_TENSOR');
    expect(missing.message).toContain('model.embed_tokens.weight');
  });

  it('a shard listed in the index is missing', async () => {
    const e = await loadError(broken((d) => {
      writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors' } }));
      rmSync(join(d, 'model.safetensors'));
    }));
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.message).toContain('model-00002-of-00002.safetensors');
  });

  it('asking for CUDA without a usable device is a clear error', async () => {
    if (native().buildInfo().cudaDevices > 0) return;
    const e = await Model.load(good, { backend: 'cuda' }).then(() => undefined, (err) => err as HayateError);
    expect(e?.code).toBe('ERR_BACKEND');
  });
});

describe('bad generation input', () => {
  let model: Model;
  beforeAll(async () => { model = await Model.load(good); });
  afterAll(async () => { await model?.dispose(); });

  it('a prompt longer than the context', async () => {
    const p = model.generate({ tokens: randomTokens(65, model.info.vocabSize, 1) }, { maxNewTokens: 2 });
    await expect(p).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(model.generate({ tokens: randomTokens(65, model.info.vocabSize, 1) })).rejects.toThrow(/longer than the model's context of 64/);
    await expect(model.logprobs([{ tokens: randomTokens(65, model.info.vocabSize, 1) }])).rejects.toBeInstanceOf(ContextOverflowError);
  });

  it('token ids outside the vocabulary, empty prompts and bad sampling options', async () => {
    await expect(model.generate({ tokens: [1, 2, model.info.vocabSize] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate({ tokens: [-1] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate({ tokens: [] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate('hi', { temperature: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate('hi', { topP: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate('hi', { maxNewTokens: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.generate('hi', { n: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('safetensors header parser fuzz', () => {
  // xorshift PRNG so failures reproduce
  let s = 0x9e3779b9;
  const rand = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
  const expectCleanResult = (bytes: Uint8Array) => {
    try {
      native().parseSafetensorsHeader(bytes);
    } catch (err) {
      expect((err as { code?: string }).code).toBe('ERR_BAD_SAFETENSORS');
    }
  };

  it('random bytes', () => {
    for (let i = 0; i < 3000; i++) {
      const b = new Uint8Array(Math.floor(rand() * 64));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
      if (b.length >= 8 && rand() < 0.5) new DataView(b.buffer).setBigUint64(0, BigInt(b.length - 8), true);
      expectCleanResult(b);
    }
  });

  it('mutated valid headers', () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [24, 32] },
    });
    const valid = new Uint8Array(8 + header.length + 32);
    new DataView(valid.buffer).setBigUint64(0, BigInt(header.length), true);
    valid.set(new TextEncoder().encode(header), 8);
    expect(native().parseSafetensorsHeader(valid).map((t) => t.name).sort()).toEqual(['a', 'b']);
    const alphabet = '{}[]":,0123456789-eE.tfn \\u"F32BF16I64';
    for (let i = 0; i < 20000; i++) {
      const m = valid.slice(0, 8 + header.length + Math.floor(rand() * 40));
      const edits = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < edits; k++) {
        const at = Math.floor(rand() * m.length);
        m[at] = rand() < 0.5 ? alphabet.charCodeAt(Math.floor(rand() * alphabet.length)) : Math.floor(rand() * 256);
      }
      expectCleanResult(m);
    }
  });
});

describe('CLI exit codes', () => {
  const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
  it('a missing model directory exits 1 with one clear line', () => {
    const r = spawnSync(process.execPath, [cli, 'generate', '/nonexistent/model', 'hello'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/hayate: error: model directory not found: \/nonexistent\/model/);
  });
  it('a bad flag value exits 2', () => {
    const r = spawnSync(process.execPath, [cli, 'generate', good, 'hello', '--top-p', '7'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--top-p');
  });
  it('init-model + generate run end to end', () => {
    const dir = tempDir();
    execFileSync(process.execPath, [cli, 'init-model', dir, '--shape', 'tiny', '--overwrite'], { encoding: 'utf8' });
    const out = execFileSync(process.execPath, [cli, 'generate', dir, 'Tom has', '-m', '5', '--format', 'json', '-n', '2'], { encoding: 'utf8' });
    const line = JSON.parse(out.trim().split('\n')[0]);
    expect(line.completions).toHaveLength(2);
    expect(line.completions[0].tokens.length).toBeGreaterThan(0);
  });
});
