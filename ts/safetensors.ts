// Safetensors from TypeScript: typed wrappers over the native addon, whose C++ reader and writer (the ones
// the engine loads and merges models with) own the format: parsing, validation, the header's exact bytes,
// float16/bfloat16 rounding and atomic writes. What stays here is JavaScript's side of it: turning results
// into Maps and typed arrays, pulling tensor values from generators, and planning shards.
// Format: 8-byte little-endian header length, a JSON header (name -> dtype, shape, data_offsets relative
// to the end of the header, plus optional "__metadata__" of strings), then the raw tensor bytes.
import { join } from 'node:path';
import { fromNative, HayateError, ModelFormatError } from './errors.js';
import { native, type NativeSafetensorsTensor, type NativeWriteTensorHeader } from './native.js';

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

/** Calls the addon, turning its coded errors into typed HayateErrors. */
function call<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw fromNative(err);
  }
}

// ---------------------------------------------------------------------------------------------------------
// float32 <-> bf16 / f16 conversion (round to nearest, ties to even; NaN stays NaN, overflow goes to inf),
// the engine's own, so values predicted here are the values written.

/** Bits of the bf16 nearest to float32 value `x`. */
export function f32ToBf16Bits(x: number): number {
  return native().f32ToBf16Bits(x);
}

/** Bits of the IEEE half nearest to float32 value `x`. */
export function f32ToF16Bits(x: number): number {
  return native().f32ToF16Bits(x);
}

export function bf16BitsToF32(h: number): number {
  return native().bf16BitsToF32(h);
}

export function f16BitsToF32(h: number): number {
  return native().f16BitsToF32(h);
}

// ---------------------------------------------------------------------------------------------------------
// Reading

function toMap(tensors: NativeSafetensorsTensor[]): Map<string, ReadTensor> {
  const out = new Map<string, ReadTensor>();
  for (const t of tensors) out.set(t.name, { dtype: t.dtype as SafetensorsDtype, shape: t.shape, data: t.data });
  return out;
}

/** Reads every tensor of one safetensors file; float dtypes are converted to Float64Array. */
export function readSafetensors(path: string): Map<string, ReadTensor> {
  return toMap(call(() => native().readSafetensors(path)));
}

/** The header of one file, read without its tensor data: name -> dtype and shape, plus metadata. */
export function readSafetensorsHeader(path: string): { tensors: Map<string, { dtype: SafetensorsDtype; shape: number[] }>; metadata: Record<string, string> } {
  const header = call(() => native().readSafetensorsHeader(path));
  const tensors = new Map<string, { dtype: SafetensorsDtype; shape: number[] }>();
  for (const t of header.tensors) tensors.set(t.name, { dtype: t.dtype as SafetensorsDtype, shape: t.shape });
  return { tensors, metadata: header.metadata };
}

/**
 * Reads all weights of a model directory exactly as the engine loads it: the shards listed in
 * model.safetensors.index.json, or model.safetensors.
 */
export function readSafetensorsDir(dir: string): Map<string, ReadTensor> {
  return toMap(call(() => native().readSafetensorsDir(dir)));
}

// ---------------------------------------------------------------------------------------------------------
// Writing

/** What the native writer needs to know up front; a ready array's length is checked against the shape. */
function headerOf(t: WriteTensor): NativeWriteTensorHeader {
  return t.data instanceof Float32Array ? { name: t.name, dtype: t.dtype, shape: t.shape, length: t.data.length } : { name: t.name, dtype: t.dtype, shape: t.shape };
}

function* chunksOf(t: WriteTensor): Iterable<Float32Array> {
  if (t.data instanceof Float32Array) yield t.data;
  else yield* t.data();
}

/** Writes one safetensors file atomically (temporary name, then rename). */
export function writeSafetensors(path: string, tensors: readonly WriteTensor[], metadata?: Record<string, string>): void {
  const writer = call(() => new (native().SafetensorsWriter)(path, tensors.map(headerOf), { format: 'pt', ...(metadata ?? {}) }));
  try {
    for (const t of tensors) {
      for (const chunk of chunksOf(t)) call(() => writer.writeValues(chunk));
      call(() => writer.endTensor());
    }
    call(() => writer.commit());
  } catch (err) {
    writer.abort();
    if (err instanceof HayateError) throw err;
    // an error of a value generator: the file could not be written
    throw new HayateError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
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
 * ({ metadata: { total_size }, weight_map }), as transformers' save_pretrained does. Every tensor is checked
 * before the first shard is written, and the index is written last, so a directory with an index has all
 * its shards. Returns the file names written.
 */
export function writeShardedSafetensors(dir: string, tensors: readonly WriteTensor[], options: ShardedWriteOptions): string[] {
  const sizes = call(() => native().checkSafetensorsTensors(tensors.map(headerOf)));
  const shards = planShards(tensors, options.maxShardBytes);
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  shards.forEach((shard, i) => {
    const file = shardFileName(i, shards.length);
    writeSafetensors(join(dir, file), shard, options.metadata);
    for (const t of shard) weightMap[t.name] = file;
    files.push(file);
  });
  const totalSize = sizes.reduce((a, b) => a + b, 0);
  const indexFile = 'model.safetensors.index.json';
  call(() => native().writeSafetensorsIndex(join(dir, indexFile), totalSize, weightMap));
  files.push(indexFile);
  return files;
}
