// ts/safetensors.ts over the native reader and writer: exact header bytes (files must stay byte-identical to
// what the earlier TypeScript writer produced), metadata order, integer dtypes, the sharded index, and bad
// input at the addon boundary giving typed errors, never a crash or a leftover temporary file.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HayateError, ModelFormatError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { readSafetensors, readSafetensorsDir, readSafetensorsHeader, writeSafetensors, writeShardedSafetensors, type WriteTensor } from '../ts/safetensors.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hayate-stn-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A safetensors file from a header object (serialised by JSON.stringify, padded to 8) and raw data bytes. */
function rawFile(header: unknown, data: Uint8Array): Buffer {
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length % 8) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function caught(f: () => unknown): HayateError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(HayateError);
    return err as HayateError;
  }
  throw new Error('expected an error');
}

describe('native safetensors writer', () => {
  it('writes the header JSON.stringify gives, metadata first in insertion order', () => {
    const path = join(tempDir(), 'h.safetensors');
    const name = 'q "x"\n\t\\\u0001é😀';
    writeSafetensors(path, [
      { name: 'a', dtype: 'F32', shape: [2], data: Float32Array.of(1, -2) },
      { name, dtype: 'BF16', shape: [1, 1], data: Float32Array.of(3) },
    ], { step: '3', format: 'hayate-adamw', skipped_steps: '0' });
    const expected = rawFile({
      __metadata__: { format: 'hayate-adamw', step: '3', skipped_steps: '0' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      [name]: { dtype: 'BF16', shape: [1, 1], data_offsets: [8, 10] },
    }, Uint8Array.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x40, 0x40]));
    expect(readFileSync(path).equals(expected)).toBe(true);
    expect(readSafetensorsHeader(path).metadata).toEqual({ format: 'hayate-adamw', step: '3', skipped_steps: '0' });
  });

  it('reads every integer dtype into its own typed array, and refuses 8-bit floats', () => {
    const dir = tempDir();
    const path = join(dir, 'ints.safetensors');
    writeFileSync(path, rawFile({
      i8: { dtype: 'I8', shape: [2], data_offsets: [0, 2] },
      b: { dtype: 'BOOL', shape: [1], data_offsets: [2, 3] },
      i64: { dtype: 'I64', shape: [1], data_offsets: [3, 11] },
      f64: { dtype: 'F64', shape: [1], data_offsets: [11, 19] },
    }, Uint8Array.from([0xff, 5, 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f])));
    const t = readSafetensors(path);
    expect(Array.from(t.get('i8')!.data as Int8Array)).toEqual([-1, 5]);
    expect(t.get('b')!.data).toBeInstanceOf(Uint8Array);
    expect((t.get('i64')!.data as BigInt64Array)[0]).toBe(-2n);
    expect(Array.from(t.get('f64')!.data as Float64Array)).toEqual([1.5]); // unaligned in the file
    const f8 = join(dir, 'f8.safetensors');
    writeFileSync(f8, rawFile({ x: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, Uint8Array.of(1)));
    const e = caught(() => readSafetensors(f8));
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.code).toBe('ERR_BAD_SAFETENSORS');
  });

  it('checks input at the boundary with the messages of the former TypeScript writer', () => {
    const dir = tempDir();
    const p = join(dir, 'x.safetensors');
    const w = (t: Partial<WriteTensor>[]) => caught(() => writeSafetensors(p, t as WriteTensor[]));
    expect(w([{ name: 'w', dtype: 'I64' as never, shape: [1], data: new Float32Array(1) }]).message).toBe('tensor w: cannot write dtype I64 (use F32, BF16 or F16)');
    expect(w([{ name: 'w', dtype: 'F32', shape: [1.5], data: new Float32Array(1) }]).message).toBe('tensor w: invalid shape [1.5]');
    expect(w([{ name: 'w', dtype: 'F32', shape: [-1], data: new Float32Array(1) }]).code).toBe('ERR_INVALID_ARGUMENT');
    expect(w([{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]).message).toBe('duplicate tensor name w');
    expect(w([{ name: 'w', dtype: 'F32', shape: [2], data: () => [new Float32Array(3)] }]).message).toBe('tensor w: more values than its shape [2] holds');
    expect(w([{ name: 'w', dtype: 'F32', shape: [2], data: () => [new Float32Array(1)] }]).message).toBe('tensor w: 1 values for shape [2]');
    expect(w([{ name: 'w', dtype: 'F32', shape: [2], data: () => [[1, 2] as never] }]).code).toBe('ERR_INVALID_ARGUMENT');
    const gen = w([{ name: 'w', dtype: 'F32', shape: [2], data: function* () { throw new Error('generator failed'); } }]);
    expect(gen.code).toBe('ERR_IO');
    expect(gen.message).toMatch(/cannot write .*x\.safetensors: generator failed/);
    expect(caught(() => writeSafetensors(p, [], { n: 1 as never })).code).toBe('ERR_INVALID_ARGUMENT');
    const io = caught(() => writeSafetensors(join(dir, 'missing', 'x.safetensors'), []));
    expect(io.code).toBe('ERR_IO');
    expect(io.message).toMatch(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the writer object validates its own arguments and survives misuse', () => {
    const dir = tempDir();
    const W = native().SafetensorsWriter;
    expect(() => new W(join(dir, 'a'), 'nope' as never, {})).toThrow(/array/);
    expect(() => new W(join(dir, 'a'), [{ name: 1 } as never], {})).toThrow(/name/);
    const w = new W(join(dir, 'a'), [{ name: 'x', dtype: 'F32', shape: [1] }], {});
    expect(() => w.writeValues(new Float64Array(1) as never)).toThrow(/Float32Array/);
    w.abort();
    expect(() => w.writeValues(new Float32Array(1))).toThrow(/after commit or abort/);
    expect(() => w.commit()).toThrow(/after commit or abort/);
    w.abort();
    expect(readdirSync(dir)).toEqual([]);
    expect(() => native().f32ToBf16Bits('1' as never)).toThrow(/number/);
  });

  it('sharded writes check every tensor before the first shard and index as transformers does', () => {
    const dir = tempDir();
    const t = (name: string, n: number): WriteTensor => ({ name, dtype: 'F32', shape: [n], data: new Float32Array(n) });
    expect(caught(() => writeShardedSafetensors(dir, [t('a', 4), t('b', 4), t('a', 4)], { maxShardBytes: 16 })).message).toBe('duplicate tensor name a');
    expect(readdirSync(dir)).toEqual([]);
    writeShardedSafetensors(dir, [t('b', 4), t('a', 4), t('7', 2)], { maxShardBytes: 16 });
    expect(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).toBe(`${JSON.stringify({
      metadata: { total_size: 40 },
      weight_map: { b: 'model-00001-of-00003.safetensors', a: 'model-00002-of-00003.safetensors', 7: 'model-00003-of-00003.safetensors' },
    }, null, 2)}\n`);
    expect([...readSafetensorsDir(dir).keys()]).toEqual(['7', 'b', 'a']); // shards in the index's order
  });
});
