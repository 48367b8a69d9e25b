// Loads the native addon (built by cmake-js into build-cmake/, or by node-gyp into build/) and declares
// its interface. Nothing else in ts/ touches the addon's untyped surface.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HayateError } from './errors.js';

export interface NativeGenerateRequest {
  prompt: Int32Array;
  n?: number;
  maxNewTokens?: number;
  seed?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  stopTokenIds?: Int32Array;
  stopStrings?: string[];
}

export interface NativeGenerateOptions {
  maxBatch?: number;
  prefillChunk?: number;
  kvCacheTokens?: number;
  kvCacheBytes?: number;
}

export interface NativeProgress {
  generatedTokens: number;
  finishedSequences: number;
  totalSequences: number;
  runningSequences: number;
}

export interface NativeOutput {
  request: number;
  sample: number;
  tokens: Int32Array;
  logprobs: Float32Array;
  finishReason: 'stop' | 'length';
  stopString: number;
  stopStringOffset: number;
}

export interface NativeGenerationStats {
  promptTokens: number;
  generatedTokens: number;
  steps: number;
  prefillSeconds: number;
  decodeSeconds: number;
  decodeStepTokens: number;
  kvCacheBlocks: number;
}

export interface NativeModelInfo {
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  eosTokenIds: Int32Array;
  parameters: number;
  backend: string;
  backendDescription: string;
  bytesInUse: number;
  peakBytes: number;
}

export interface NativeCancelToken {
  cancel(): void;
  cancelled(): boolean;
}

export interface NativeModelHandle {
  info(): NativeModelInfo;
  setTokenBytes(bytes: Uint8Array[]): void;
  generate(
    requests: NativeGenerateRequest[],
    options?: NativeGenerateOptions,
    onProgress?: (p: NativeProgress) => void,
    cancel?: NativeCancelToken,
  ): Promise<{ outputs: NativeOutput[]; stats: NativeGenerationStats }>;
  logprobs(sequences: Int32Array[], options?: { temperature?: number }): Promise<Float32Array[]>;
  logits(tokens: Int32Array): Promise<Float32Array>;
  dispose(): void;
}

export interface NativeTensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  dataBegin: number;
  dataEnd: number;
}

export interface NativeBuildInfo {
  cudaCompiled: boolean;
  cudaDevices: number;
  blas: string;
  hardwareThreads: number;
}

export interface NativeAddon {
  loadModel(dir: string, options?: { backend?: string; threads?: number; device?: number; gemm?: string }): Promise<NativeModelHandle>;
  CancelToken: new () => NativeCancelToken;
  buildInfo(): NativeBuildInfo;
  parseSafetensorsHeader(bytes: Uint8Array, fileSize?: number): NativeTensorEntry[];
  inspectSafetensors(path: string): NativeTensorEntry[];
}

let cached: NativeAddon | undefined;

/** The package root (the directory holding package.json), from dist/ or ts/ alike. */
export function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

/** Loads the addon once. HAYATE_ADDON may point at a specific .node file. */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = [
    process.env.HAYATE_ADDON,
    join(root, 'build-cmake', 'Release', 'hayate.node'),
    join(root, 'build', 'Release', 'hayate.node'),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new HayateError(
      'ERR_NATIVE_ADDON',
      `hayate's native addon is not built (looked in ${candidates.join(', ')}); run \`npm run build:native\` (needs CMake and a C++ compiler)`,
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeAddon;
  return cached;
}
