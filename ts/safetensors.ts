// Pure-TypeScript safetensors reader and writer. The native engine memory-maps weights itself; this module
// serves the JS side: writing models (init-model, adapters), and reading them in tests and the reference
// model. Format: 8-byte little-endian header length, a JSON header (name -> dtype, shape, data_offsets
// relative to the end of the header, plus optional "__metadata__" of strings), then the raw tensor bytes.
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { HayateError, ModelFormatError } from './errors.js';

/** Dtypes this module can write (from float32 data). */
export type WritableDtype = 'F32' | 'BF16' | 'F16';

export type SafetensorsDtype = WritableDtype | 'F64' | 'I8' | 'U8' | 'I16' | 'U16' | 'I32' | 'U32' | 'I64' | 'U64' | 'BOOL';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I16: 2, U16: 2, I32: 4, U32: 4, I64: 8, U64: 8, BOOL: 1,
};

/** Floating-point tensors are widened to Float64Array; integer tensors keep their own typed array. */
export type TensorData = Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface ReadTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** The values of a floating-point tensor (F64/F32/F16/BF16, read as Float64Array); throws for integer dtypes. */
export function floatData(t: ReadTensor, name = 'tensor'): Float64Array {
  if (!(t.data instanceof Float64Array)) throw new ModelFormatError('ERR_BAD_TENSOR', `${name} has dtype ${t.dtype}, expected a floating-point dtype`);
  return t.data;
}

export interface WriteTensor {
  name: string;
  dtype: WritableDtype;
  shape: number[];
  /**
   * The values in row-major order: one array, or a function producing them as consecutive chunks (so a large
   * tensor can be generated and written without holding it all in memory). Called once, when written.
   */
  data: Float32Array | (() => Iterable<Float32Array>);
}

export interface ShardedWriteOptions {
  /** Largest shard size in bytes of tensor data; a tensor larger than this gets a shard of its own. */
  maxShardBytes: number;
  metadata?: Record<string, string>;
}

export function dtypeBytes(dtype: SafetensorsDtype): number {
  return DTYPE_BYTES[dtype];
}

export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// float32 <-> bf16 / f16 conversion (round to nearest, ties to even; NaN stays NaN, overflow goes to inf).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the bf16 nearest to float32 value `x`. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  return bitsF32ToBf16(u32[0]);
}

function bitsF32ToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff; // quiet NaN
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into the exponent is the correct result.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Bits of the IEEE half nearest to float32 value `x`. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  return bitsF32ToF16(u32[0]);
}

function bitsF32ToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: the value in units of 2^-24 is the 24-bit significand shifted right by 14 - e.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r; // r === 0x400 is the smallest normal, encoded correctly by the carry
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // carry may reach 0x7c00 = inf, as it should
  return sign | r;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes float32 values as the dtype's little-endian bytes, into `scratch` (grown as needed). */
function encode(dtype: WritableDtype, src: Float32Array, scratch: { buf: ArrayBuffer }): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  const bytes = src.length * 2;
  if (scratch.buf.byteLength < bytes) scratch.buf = new ArrayBuffer(bytes);
  const out = new Uint16Array(scratch.buf, 0, src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  // One loop per dtype, so the conversion inlines (this loop runs over every weight of a model).
  if (dtype === 'BF16') for (let i = 0; i < bits.length; i++) out[i] = bitsF32ToBf16(bits[i]);
  else for (let i = 0; i < bits.length; i++) out[i] = bitsF32ToF16(bits[i]);
  return new Uint8Array(scratch.buf, 0, bytes);
}

// Typed arrays use the platform's byte order and safetensors is little-endian; every platform Node ships
// for in practice is little-endian, so refuse the rest instead of silently byte-swapping wrongly.
function requireLittleEndian(): void {
  if (endianness() !== 'LE') throw new HayateError('ERR_INTERNAL', 'safetensors I/O needs a little-endian platform');
}

// ---------------------------------------------------------------------------------------------------------
// Reading

interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data_offsets: [number, number];
}

function badFile(path: string, why: string): ModelFormatError {
  return new ModelFormatError('ERR_BAD_SAFETENSORS', `${path} is not a valid safetensors file: ${why}`);
}

interface ParsedHeader {
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
}

/**
 * Parses and validates the JSON header. With `dataLen` (bytes after the header), offsets are checked to lie
 * inside the data section.
 */
function parseHeaderJson(path: string, text: string, dataLen: number | undefined): ParsedHeader {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw badFile(path, `header is not JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw badFile(path, 'header is not a JSON object');
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const e = (value ?? {}) as Partial<HeaderEntry>;
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) throw badFile(path, `tensor ${name} has unsupported dtype ${String(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw badFile(path, `tensor ${name} has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !Number.isInteger(off[0]) || !Number.isInteger(off[1]) || off[0] < 0 || off[1] < off[0]) {
      throw badFile(path, `tensor ${name} has invalid data_offsets`);
    }
    if (dataLen !== undefined && off[1] > dataLen) throw badFile(path, `tensor ${name} ends at byte ${off[1]}, past the ${dataLen}-byte data section (truncated file?)`);
    const expected = numElements(e.shape) * DTYPE_BYTES[e.dtype as SafetensorsDtype];
    if (off[1] - off[0] !== expected) throw badFile(path, `tensor ${name} spans ${off[1] - off[0]} bytes, but ${e.dtype}${JSON.stringify(e.shape)} needs ${expected}`);
    entries.set(name, { dtype: e.dtype as SafetensorsDtype, shape: e.shape, data_offsets: off as [number, number] });
  }
  return { entries, metadata };
}

function headerLength(path: string, first8: Buffer, fileSize: number): number {
  if (fileSize < 8) throw badFile(path, 'shorter than the 8-byte header length');
  const len = first8.readBigUInt64LE(0);
  if (len > BigInt(fileSize - 8)) throw badFile(path, `header length ${len} exceeds the file size ${fileSize}`);
  return Number(len);
}

function decode(dtype: SafetensorsDtype, bytes: Buffer): TensorData {
  const n = bytes.length / DTYPE_BYTES[dtype];
  // Copy into an aligned buffer: the file's data offsets need not be aligned to the element size.
  const ab = new ArrayBuffer(bytes.length);
  new Uint8Array(ab).set(bytes);
  switch (dtype) {
    case 'F64': return new Float64Array(ab);
    case 'F32': return Float64Array.from(new Float32Array(ab));
    case 'BF16': {
      const h = new Uint16Array(ab);
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(h[i]);
      return out;
    }
    case 'F16': {
      const h = new Uint16Array(ab);
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(h[i]);
      return out;
    }
    case 'I8': return new Int8Array(ab);
    case 'U8': case 'BOOL': return new Uint8Array(ab);
    case 'I16': return new Int16Array(ab);
    case 'U16': return new Uint16Array(ab);
    case 'I32': return new Int32Array(ab);
    case 'U32': return new Uint32Array(ab);
    case 'I64': return new BigInt64Array(ab);
    case 'U64': return new BigUint64Array(ab);
  }
}

function readFileOrThrow(path: string): Buffer {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `safetensors file not found: ${path}`);
  return readFileSync(path);
}

/** Reads every tensor of one safetensors file; float dtypes are converted to Float64Array. */
export function readSafetensors(path: string): Map<string, ReadTensor> {
  requireLittleEndian();
  const buf = readFileOrThrow(path);
  const len = headerLength(path, buf, buf.length);
  const dataStart = 8 + len;
  const { entries } = parseHeaderJson(path, buf.toString('utf8', 8, dataStart), buf.length - dataStart);
  const out = new Map<string, ReadTensor>();
  for (const [name, e] of entries) {
    const bytes = buf.subarray(dataStart + e.data_offsets[0], dataStart + e.data_offsets[1]);
    out.set(name, { dtype: e.dtype, shape: e.shape, data: decode(e.dtype, bytes) });
  }
  return out;
}

/** The header of one file, read without its tensor data: name -> dtype and shape, plus metadata. */
export function readSafetensorsHeader(path: string): { tensors: Map<string, { dtype: SafetensorsDtype; shape: number[] }>; metadata: Record<string, string> } {
  if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `safetensors file not found: ${path}`);
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const first8 = Buffer.alloc(8);
    readSync(fd, first8, 0, 8, 0);
    const len = headerLength(path, first8, size);
    const head = Buffer.alloc(len);
    if (readSync(fd, head, 0, len, 8) !== len) throw badFile(path, 'truncated header');
    const { entries, metadata } = parseHeaderJson(path, head.toString('utf8'), size - 8 - len);
    const tensors = new Map<string, { dtype: SafetensorsDtype; shape: number[] }>();
    for (const [name, e] of entries) tensors.set(name, { dtype: e.dtype, shape: e.shape });
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads all weights of a model directory: model.safetensors, or the shards listed in
 * model.safetensors.index.json.
 */
export function readSafetensorsDir(dir: string): Map<string, ReadTensor> {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return readSafetensors(single);
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexPath)) throw new HayateError('ERR_NOT_FOUND', `${dir} has neither model.safetensors nor model.safetensors.index.json`);
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8')) as typeof index;
  } catch (err) {
    throw new ModelFormatError('ERR_BAD_SAFETENSORS', `${indexPath} is not valid JSON: ${(err as Error).message}`);
  }
  if (!index.weight_map || typeof index.weight_map !== 'object') throw new ModelFormatError('ERR_BAD_SAFETENSORS', `${indexPath} has no weight_map`);
  const out = new Map<string, ReadTensor>();
  for (const file of new Set(Object.values(index.weight_map))) {
    for (const [name, t] of readSafetensors(join(dir, file))) out.set(name, t);
  }
  for (const name of Object.keys(index.weight_map)) {
    if (!out.has(name)) throw new ModelFormatError('ERR_BAD_SAFETENSORS', `${indexPath} maps ${name} to ${index.weight_map[name]}, which does not contain it`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

function validateWriteTensor(t: WriteTensor): void {
  if (!(t.dtype in DTYPE_BYTES) || (t.dtype !== 'F32' && t.dtype !== 'BF16' && t.dtype !== 'F16')) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `tensor ${t.name}: cannot write dtype ${String(t.dtype)} (use F32, BF16 or F16)`);
  }
  if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new HayateError('ERR_INVALID_ARGUMENT', `tensor ${t.name}: invalid shape ${JSON.stringify(t.shape)}`);
  if (t.data instanceof Float32Array && t.data.length !== numElements(t.shape)) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `tensor ${t.name}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
  }
}

/** Builds the header bytes: 8-byte length + JSON padded with spaces so tensor data starts 8-byte aligned. */
function buildHeader(tensors: readonly WriteTensor[], metadata: Record<string, string> | undefined): Buffer {
  const header: Record<string, unknown> = {};
  header.__metadata__ = { format: 'pt', ...(metadata ?? {}) };
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new HayateError('ERR_INVALID_ARGUMENT', `duplicate tensor name ${t.name}`);
    seen.add(t.name);
    const bytes = numElements(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json]);
}

function* chunksOf(t: WriteTensor): Iterable<Float32Array> {
  if (t.data instanceof Float32Array) yield t.data;
  else yield* t.data();
}

/** Temporary sibling name; the rename makes the final file appear complete or not at all. */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** Runs `write` on a temporary file, then renames it into place; removes the temporary file on failure. */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = tempPath(path);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    if (err instanceof HayateError) throw err;
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
}

/** Writes a whole file atomically. */
export function writeBytesAtomic(path: string, bytes: Uint8Array): void {
  writeFileAtomic(path, (fd) => writeAll(fd, bytes));
}

/** Writes one safetensors file atomically (temporary name, then rename). */
export function writeSafetensors(path: string, tensors: readonly WriteTensor[], metadata?: Record<string, string>): void {
  requireLittleEndian();
  for (const t of tensors) validateWriteTensor(t);
  const header = buildHeader(tensors, metadata);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, header);
    const scratch = { buf: new ArrayBuffer(0) };
    for (const t of tensors) {
      const expected = numElements(t.shape);
      let written = 0;
      for (const chunk of chunksOf(t)) {
        if (written + chunk.length > expected) throw new HayateError('ERR_INVALID_ARGUMENT', `tensor ${t.name}: more values than its shape ${JSON.stringify(t.shape)} holds`);
        writeAll(fd, encode(t.dtype, chunk, scratch));
        written += chunk.length;
      }
      if (written !== expected) throw new HayateError('ERR_INVALID_ARGUMENT', `tensor ${t.name}: ${written} values for shape ${JSON.stringify(t.shape)}`);
    }
  });
}

/** Groups tensors, in order, into shards of at most maxShardBytes of data each. */
export function planShards(tensors: readonly WriteTensor[], maxShardBytes: number): WriteTensor[][] {
  if (!(maxShardBytes > 0)) throw new HayateError('ERR_INVALID_ARGUMENT', `maxShardBytes must be positive, got ${maxShardBytes}`);
  const shards: WriteTensor[][] = [];
  let current: WriteTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = numElements(t.shape) * DTYPE_BYTES[t.dtype];
    if (current.length > 0 && size + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Writes tensors into `dir` as model-0000i-of-0000N.safetensors shards plus model.safetensors.index.json
 * ({ metadata: { total_size }, weight_map }), as transformers' save_pretrained does. The index is written
 * last, so a directory with an index has all its shards. Returns the file names written.
 */
export function writeShardedSafetensors(dir: string, tensors: readonly WriteTensor[], options: ShardedWriteOptions): string[] {
  for (const t of tensors) validateWriteTensor(t);
  const shards = planShards(tensors, options.maxShardBytes);
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const files: string[] = [];
  shards.forEach((shard, i) => {
    const file = shardFileName(i, shards.length);
    writeSafetensors(join(dir, file), shard, options.metadata);
    for (const t of shard) {
      weightMap[t.name] = file;
      totalSize += numElements(t.shape) * DTYPE_BYTES[t.dtype];
    }
    files.push(file);
  });
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  const indexFile = 'model.safetensors.index.json';
  writeBytesAtomic(join(dir, indexFile), Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8'));
  files.push(indexFile);
  return files;
}
