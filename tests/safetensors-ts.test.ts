import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  floatData,
  planShards,
  readSafetensors,
  readSafetensorsDir,
  readSafetensorsHeader,
  writeSafetensors,
  writeShardedSafetensors,
  type WriteTensor,
} from '../ts/safetensors.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hayate-st-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** float32 value with the given bit pattern. */
function fromBits(bits: number): number {
  const u = new Uint32Array([bits >>> 0]);
  return new Float32Array(u.buffer)[0];
}

describe('bf16 / f16 conversion', () => {
  it('bf16 rounds to nearest, ties to even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 (even) and 1 + 2^-7: rounds down to the even one.
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    // halfway between 1 + 2^-7 (odd mantissa) and 1 + 2^-6: rounds up to the even one.
    expect(f32ToBf16Bits(1 + 2 ** -7 + 2 ** -8)).toBe(0x3f82);
    // just above halfway rounds up.
    expect(f32ToBf16Bits(fromBits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16Bits(-2.5)).toBe(0xc020);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(fromBits(0x7f7fffff))).toBe(0x7f80); // max float32 overflows to inf
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(fromBits(0x7f800001))))).toBe(true); // NaN payload not turned into inf
  });

  it('f16 matches exhaustive decode/encode and rounds midpoints to even', () => {
    const failures: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) {
        if (!Number.isNaN(f16BitsToF32(f32ToF16Bits(v)))) failures.push(`NaN ${h}`);
        continue;
      }
      if (f32ToF16Bits(v) !== h) failures.push(`value of ${h}`);
      // Midpoint to the next finite half of the same sign (exact in float32) rounds to the even neighbour.
      if ((h & 0x7fff) < 0x7bff) {
        const mid = (v + f16BitsToF32(h + 1)) / 2;
        if (f32ToF16Bits(mid) !== (h % 2 === 0 ? h : h + 1)) failures.push(`midpoint after ${h}`);
      }
    }
    expect(failures).toEqual([]);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway past the largest half rounds to inf
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // half of the smallest subnormal: tie to even zero
    expect(f32ToF16Bits(2 ** -25 * 1.0001)).toBe(1);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
  });

  it('bf16 decode/encode is exact for every finite bf16', () => {
    const failures: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const v = bf16BitsToF32(h);
      if (!Number.isNaN(v) && f32ToBf16Bits(v) !== h) failures.push(h);
    }
    expect(failures).toEqual([]);
  });
});

describe('safetensors files', () => {
  const values = Float32Array.from({ length: 24 }, (_, i) => (i - 11.3) * 0.731);
  const tensors: WriteTensor[] = [
    { name: 'a.f32', dtype: 'F32', shape: [2, 3, 4], data: values },
    { name: 'b.bf16', dtype: 'BF16', shape: [24], data: values },
    { name: 'c.f16', dtype: 'F16', shape: [4, 6], data: values },
    { name: 'd.scalar', dtype: 'F32', shape: [], data: Float32Array.of(3.5) },
    { name: 'e.empty', dtype: 'BF16', shape: [0, 5], data: new Float32Array(0) },
  ];

  it('writes the documented layout and reads it back', () => {
    const path = join(tempDir(), 'x.safetensors');
    writeSafetensors(path, tensors, { note: 'hi' });
    const buf = readFileSync(path);
    const headerLen = Number(buf.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen)) as Record<string, { data_offsets: number[] }>;
    expect(buf.toString('utf8', 8, 8 + headerLen)).toMatch(/ *$/);
    expect(header.__metadata__).toEqual({ format: 'pt', note: 'hi' });
    expect(header['a.f32'].data_offsets).toEqual([0, 96]);
    expect(header['b.bf16'].data_offsets).toEqual([96, 144]);
    expect(buf.length).toBe(8 + headerLen + 96 + 48 + 48 + 4);

    const read = readSafetensors(path);
    expect(read.get('a.f32')!.shape).toEqual([2, 3, 4]);
    expect(Array.from(read.get('a.f32')!.data as Float64Array)).toEqual(Array.from(values));
    const bf = read.get('b.bf16')!.data as Float64Array;
    const hf = read.get('c.f16')!.data as Float64Array;
    for (let i = 0; i < values.length; i++) {
      expect(bf[i]).toBe(bf16BitsToF32(f32ToBf16Bits(values[i])));
      expect(hf[i]).toBe(f16BitsToF32(f32ToF16Bits(values[i])));
      expect(Math.abs(bf[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -8);
      expect(Math.abs(hf[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -11);
    }
    expect(Array.from(floatData(read.get('d.scalar')!))).toEqual([3.5]);
    expect(read.get('e.empty')!.data.length).toBe(0);
    const head = readSafetensorsHeader(path);
    expect(head.tensors.get('c.f16')).toEqual({ dtype: 'F16', shape: [4, 6] });
    expect(head.metadata.note).toBe('hi');
    // no temporary files left behind
    expect(readdirSync(join(path, '..'))).toEqual(['x.safetensors']);
  });

  it('accepts tensor data as generated chunks', () => {
    const path = join(tempDir(), 'chunks.safetensors');
    writeSafetensors(path, [{ name: 'w', dtype: 'BF16', shape: [3, 4], data: function* () { yield values.subarray(0, 5); yield values.subarray(5, 12); } }]);
    const w = readSafetensors(path).get('w')!.data as Float64Array;
    expect(Array.from(w)).toEqual(Array.from(values.subarray(0, 12), (v) => bf16BitsToF32(f32ToBf16Bits(v))));
  });

  it('rejects bad input with clear errors', () => {
    const dir = tempDir();
    expect(() => writeSafetensors(join(dir, 'bad.safetensors'), [{ name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }])).toThrow(/3 values for shape \[2,2\]/);
    expect(readdirSync(dir)).toEqual([]);
    const truncated = join(dir, 't.safetensors');
    writeSafetensors(truncated, [{ name: 'w', dtype: 'F32', shape: [8], data: new Float32Array(8) }]);
    writeFileSync(truncated, readFileSync(truncated).subarray(0, -4));
    expect(() => readSafetensors(truncated)).toThrow(/past the .*data section/);
    expect(() => readSafetensors(join(dir, 'missing.safetensors'))).toThrow(/not found/);
    writeFileSync(join(dir, 'junk.safetensors'), Buffer.from([1, 2, 3]));
    expect(() => readSafetensors(join(dir, 'junk.safetensors'))).toThrow(/not a valid safetensors file/);
  });

  it('shards by size and writes a transformers-style index', () => {
    const dir = tempDir();
    const many: WriteTensor[] = Array.from({ length: 5 }, (_, i) => ({ name: `t${i}`, dtype: 'F32', shape: [10], data: Float32Array.from({ length: 10 }, (_, j) => i * 10 + j) }));
    expect(planShards(many, 80).map((s) => s.map((t) => t.name))).toEqual([['t0', 't1'], ['t2', 't3'], ['t4']]);
    expect(planShards(many, 10).length).toBe(5); // a tensor bigger than the limit gets its own shard
    const files = writeShardedSafetensors(dir, many, { maxShardBytes: 80 });
    expect(files).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(index.metadata.total_size).toBe(200);
    expect(index.weight_map.t3).toBe('model-00002-of-00003.safetensors');
    const all = readSafetensorsDir(dir);
    expect([...all.keys()].sort()).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect(Array.from(floatData(all.get('t4')!))).toEqual(Array.from({ length: 10 }, (_, j) => 40 + j));
  });
});
