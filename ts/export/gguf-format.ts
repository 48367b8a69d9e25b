// GGUF, the file format of llama.cpp, Ollama and LM Studio: the pieces hayate writes. A file is
//   magic "GGUF", version 3, tensor count (u64), metadata count (u64),
//   metadata: key (string), value type (u32), value,
//   tensor infos: name (string), n_dims (u32), dims (u64 each, innermost first), ggml type (u32), offset (u64),
//   padding to the alignment, then the tensor data, each tensor starting at a multiple of the alignment.
// Strings are a u64 byte length then UTF-8 bytes; everything is little-endian. Values are converted to the
// file's types here (f16, bf16, q8_0 blocks) from float32, with the rounding ggml's own converters use.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { HayateError } from '../errors.js';

/** GGUF metadata value types. */
export const GGUF_TYPE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

/** The ggml tensor types hayate writes (numbering of ggml.h). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** llama.cpp's general.file_type for each export dtype (llama_ftype). */
export const FILE_TYPE = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 } as const;

export const GGUF_ALIGNMENT = 32;
/** Values per q8_0 block; a block is an f16 scale then 32 int8 values. */
export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

export type MetadataValue =
  | { type: 'string'; value: string }
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'f32[]'; value: ArrayLike<number> };

export interface TensorPlan {
  name: string;
  /** Row-major shape as in safetensors / PyTorch (outermost first); written reversed, as ggml's ne. */
  shape: readonly number[];
  type: GgmlTypeName;
  /** Produces the values as consecutive float32 chunks (q8_0: each a multiple of 32 values) or raw bytes already in `type`. */
  data: () => Iterable<Float32Array | Uint8Array>;
}

export function tensorBytes(shape: readonly number[], type: GgmlTypeName): number {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (type) {
    case 'F32': return 4 * n;
    case 'F16':
    case 'BF16': return 2 * n;
    case 'Q8_0': return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

// ---------------------------------------------------------------------------------------------------------
// float32 -> f16 / bf16 / q8_0, round to nearest, ties to even (q8_0's int8 values: half away from zero, as
// C's roundf in ggml's reference quantizer).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of the float32 `x` (nearest, ties to even; overflow -> inf; NaN stays NaN). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;  // below half the smallest subnormal: +-0
    mant |= 0x800000;
    const shift = 14 - e;  // 1 - e + 13
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h += 1;
    return sign | h;  // a carry into the exponent field gives the smallest normal, as it should
  }
  const rest = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1;  // may carry into the exponent, up to inf
  return sign | h;
}

/** bfloat16 bits of the float32 `x` (nearest, ties to even; NaN stays a quiet NaN). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits -> value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes float32 values as `type` (q8_0: a whole number of 32-value blocks). */
export function encodeValues(values: Float32Array, type: GgmlTypeName): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]);
      return new Uint8Array(out.buffer);
    }
    case 'BF16': {
      const out = new Uint16Array(values.length);
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
      for (let i = 0; i < values.length; i++) {
        const b = bits[i];
        out[i] = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) | 0x40) & 0xffff : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
      }
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0':
      return quantizeQ8_0(values);
  }
}

/**
 * q8_0 blocks of float32 values: per 32 values d = max|x| / 127 (stored as f16), q = round(x / d) in int8.
 * The products are rounded to float32 as ggml computes them, so the bytes equal its reference quantizer's.
 */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % Q8_0_BLOCK !== 0) throw new HayateError('ERR_INTERNAL', `q8_0: ${values.length} values are not whole blocks of ${Q8_0_BLOCK}`);
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const qs = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(values[base + j]));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = Math.fround(values[base + j] * id);
      qs[at + 2 + j] = x < 0 ? -Math.round(-x) : Math.round(x);
    }
  }
  return out;
}

/** Values of q8_0 blocks (for checks). */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / Q8_0_BLOCK_BYTES;
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q8_0_BLOCK_BYTES;
    const d = f16ToF32(view.getUint16(at, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(at + 2 + j);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Header serialization

const utf8 = new TextEncoder();

class ByteSink {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  size = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) {
      this.buf = new Uint8Array(n);
      this.view = new DataView(this.buf.buffer);
    }
  }

  private flush(): void {
    if (this.pos > 0) this.chunks.push(this.buf.slice(0, this.pos));
    this.pos = 0;
  }

  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    this.size += 4;
  }

  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
    this.size += 4;
  }

  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
    this.size += 8;
  }

  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
    this.size += 4;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
    this.size += 1;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    this.size += b.length;
  }

  string(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }

  finish(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}

function writeValue(sink: ByteSink, v: MetadataValue): void {
  switch (v.type) {
    case 'string': sink.u32(GGUF_TYPE.STRING); sink.string(v.value); return;
    case 'u32': sink.u32(GGUF_TYPE.UINT32); sink.u32(v.value); return;
    case 'i32': sink.u32(GGUF_TYPE.INT32); sink.i32(v.value); return;
    case 'f32': sink.u32(GGUF_TYPE.FLOAT32); sink.f32(v.value); return;
    case 'bool': sink.u32(GGUF_TYPE.BOOL); sink.u8(v.value ? 1 : 0); return;
    case 'string[]':
      sink.u32(GGUF_TYPE.ARRAY); sink.u32(GGUF_TYPE.STRING); sink.u64(v.value.length);
      for (const s of v.value) sink.string(s);
      return;
    case 'i32[]':
      sink.u32(GGUF_TYPE.ARRAY); sink.u32(GGUF_TYPE.INT32); sink.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) sink.i32(v.value[i]);
      return;
    case 'f32[]':
      sink.u32(GGUF_TYPE.ARRAY); sink.u32(GGUF_TYPE.FLOAT32); sink.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) sink.f32(v.value[i]);
      return;
  }
}

function checkTensor(t: TensorPlan): void {
  if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new HayateError('ERR_INTERNAL', `GGUF tensor ${t.name}: bad shape [${t.shape.join(', ')}]`);
  }
  if (t.type === 'Q8_0' && t.shape[t.shape.length - 1] % Q8_0_BLOCK !== 0) {
    throw new HayateError('ERR_INTERNAL', `GGUF tensor ${t.name}: q8_0 needs rows of a multiple of ${Q8_0_BLOCK} values, got ${t.shape[t.shape.length - 1]}`);
  }
}

/**
 * Writes a GGUF file, streaming: the header is written from the plans, then each tensor's data as its
 * generator yields it, so at most one chunk of values is in memory. The file appears under `path` only when
 * complete (written to a temporary name, synced, renamed).
 */
export function writeGguf(path: string, metadata: ReadonlyMap<string, MetadataValue>, tensors: readonly TensorPlan[], onTensor?: (name: string, index: number) => void): void {
  const names = new Set<string>();
  for (const t of tensors) {
    checkTensor(t);
    if (names.has(t.name)) throw new HayateError('ERR_INTERNAL', `GGUF tensor ${t.name} twice`);
    names.add(t.name);
  }
  const header = new ByteSink();
  header.bytes(utf8.encode('GGUF'));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(metadata.size);
  for (const [key, value] of metadata) {
    header.string(key);
    writeValue(header, value);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) header.u64(t.shape[i]);
    header.u32(GGML_TYPE[t.type]);
    header.u64(offset);
    const size = tensorBytes(t.shape, t.type);
    sizes.push(size);
    offset = alignUp(offset + size, GGUF_ALIGNMENT);
  }
  const headerPad = alignUp(header.size, GGUF_ALIGNMENT) - header.size;
  for (let i = 0; i < headerPad; i++) header.u8(0);

  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of header.finish()) writeAll(fd, chunk);
    const zeros = new Uint8Array(GGUF_ALIGNMENT);
    tensors.forEach((t, i) => {
      let written = 0;
      for (const chunk of t.data()) {
        const bytes = chunk instanceof Float32Array ? encodeValues(chunk, t.type) : chunk;
        written += bytes.length;
        if (written > sizes[i]) break;
        writeAll(fd as number, bytes);
      }
      if (written !== sizes[i]) throw new HayateError('ERR_INTERNAL', `GGUF tensor ${t.name}: produced ${written} bytes, expected ${sizes[i]}`);
      const pad = alignUp(written, GGUF_ALIGNMENT) - written;
      if (pad > 0) writeAll(fd as number, zeros.subarray(0, pad));
      onTensor?.(t.name, i);
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to remove
    }
    if (err instanceof HayateError) throw err;
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}
