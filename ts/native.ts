// Loads the native addon (built by cmake-js into build-cmake/, or by node-gyp into build/) and declares
// its interface. Nothing else in ts/ touches the addon's untyped surface: this is the one door between the
// TypeScript side and the engine (docs/architecture.md, "The layers").
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
  precision: 'f32' | 'f64';
  bytesInUse: number;
  peakBytes: number;
}

export interface NativeCancelToken {
  cancel(): void;
  cancelled(): boolean;
}

export type NativeLoraTarget = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

export interface NativeLoraModule {
  layer: number;
  target: NativeLoraTarget;
}

export interface NativeLoraConfig {
  rank: number;
  alpha: number;
  rslora?: boolean;
  seed?: number;
  modules: NativeLoraModule[];
}

export interface NativeLoraInfo {
  rank: number;
  alpha: number;
  rslora: boolean;
  scale: number;
  parameters: number;
  modules: (NativeLoraModule & { in: number; out: number })[];
}

/** A [rank, in] and B [out, rank], row-major. */
export interface NativeLoraTensors extends NativeLoraModule {
  in?: number;
  out?: number;
  a: Float32Array | Float64Array;
  b: Float32Array | Float64Array;
}

export interface NativeModelHandle {
  info(): NativeModelInfo;
  setTokenBytes(bytes: Uint8Array[]): void;
  generate(
    requests: NativeGenerateRequest[],
    options?: NativeGenerateOptions & { lora?: boolean },
    onProgress?: (p: NativeProgress) => void,
    cancel?: NativeCancelToken,
  ): Promise<{ outputs: NativeOutput[]; stats: NativeGenerationStats }>;
  logprobs(sequences: Int32Array[], options?: { temperature?: number; lora?: boolean }): Promise<Float32Array[]>;
  logits(tokens: Int32Array, options?: { lora?: boolean }): Promise<Float32Array>;
  dispose(): void;
  attachLora(config: NativeLoraConfig): Promise<void>;
  detachLora(): Promise<void>;
  loraInfo(): NativeLoraInfo | null;
  getLoraTensors(): Promise<NativeLoraTensors[]>;
  setLoraTensors(tensors: NativeLoraTensors[]): Promise<void>;
  saveMerged(baseDir: string, outFile: string): Promise<void>;
}

/** A packed batch: sequences back to back, each a prompt followed by its completion. */
export interface NativePackedBatch {
  tokens: Int32Array;
  seqLens: Int32Array;
  promptLens: Int32Array;
}

export interface NativeTrainBatch extends NativePackedBatch {
  advantages?: Float64Array;
  oldLogprobs?: Float64Array;
  refLogprobs?: Float64Array;
  /** The sampler's log-probs (rollout correction, and the sampler-vs-trainer statistics). */
  samplingLogprobs?: Float64Array;
}

/**
 * Every field is required: the engine has no defaults for training hyperparameters (see trainer-core.ts).
 * The formulas: cpp/loss.h and docs/architecture.md ("The GRPO loss").
 */
export interface NativeLossOptions {
  type: string;
  epsilonLow: number;
  epsilonHigh: number;
  beta: number;
  /** 'token' or 'sequence' (GSPO). */
  importanceSamplingLevel: string;
  /** 'k1', 'k2' or 'k3'. */
  klEstimator: string;
  /** Dual-clip bound for negative advantages; 0: off. */
  clipRatioC: number;
  /** 'none', 'token_truncate', 'token_mask', 'sequence_truncate' or 'sequence_mask'. */
  rolloutCorrection: string;
  /** IS-weight bounds; correctionMax may be Infinity. */
  correctionMin: number;
  correctionMax: number;
  /** Train on the top-q highest-entropy tokens; 1: all. */
  topEntropyQuantile: number;
  /** Step totals for gradient accumulation; 0: this batch's. */
  sequencesInStep: number;
  tokensInStep: number;
  /** dr_grpo's normaliser; 0: the longest completion in the batch. */
  maxCompletionLength: number;
}

/** The forward pass of forwardBackward: log-probs under softmax(logits / temperature); entropy on request. */
export interface NativeGraphOptions {
  temperature: number;
  entropy: boolean;
}

/** Every field is required when creating a trainer; setOptimizer changes the ones given. */
export interface NativeOptimizerOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

export interface NativeForwardBackwardStats {
  loss: number;
  finite: boolean;
  tokens: number;
  completionTokens: number;
  sequences: number;
  kl: number;
  clipLow: number;
  clipHigh: number;
  clipRegion: number;
  /** Min over sequences of the per-sequence low-clip fraction; max of the high-clip one (TRL low_min / high_max). */
  clipLowMin: number;
  clipHighMax: number;
  /** What the clip fractions count: completion tokens (token level) or sequences (sequence level). */
  clipUnits: number;
  /** Fraction of tokens where the dual-clip bound is active. */
  dualClip: number;
  /** cispo: fraction of units whose ratio exceeds the cap with A > 0. */
  cispoClip: number;
  ratioMean: number;
  nll: number;
  /** Mean entropy over completion tokens (0 unless asked for or the loss masks by entropy). */
  entropy: number;
  /** Fraction of tokens the entropy mask keeps (1 without one). */
  entropyKept: number;
  /** With sampler log-probs: mean and max of |current - sampler| per token. */
  samplingLogpDiffMean?: number;
  samplingLogpDiffMax?: number;
  /** With a rollout correction: the IS weights (after truncation/masking) over isUnits tokens or sequences. */
  isRatioMin?: number;
  isRatioMean?: number;
  isRatioMax?: number;
  isUnits?: number;
  /** The policy's log-probs of the completion tokens as this pass computed them (before the update). */
  logprobs: Float64Array;
  seconds: number;
  referenceSeconds: number;
}

export interface NativeStepResult {
  applied: boolean;
  step: number;
  gradNorm: number;
  gradScale: number;
  lr: number;
  skippedReason?: string;
}

export interface NativeMoments extends NativeLoraModule {
  expAvgA: Float32Array | Float64Array;
  expAvgSqA: Float32Array | Float64Array;
  expAvgB: Float32Array | Float64Array;
  expAvgSqB: Float32Array | Float64Array;
}

export interface NativeTrainerState {
  step: number;
  skippedSteps: number;
  moments: NativeMoments[];
}

export interface NativeTrainerHandle {
  forwardBackward(batch: NativeTrainBatch, loss: NativeLossOptions, graph: NativeGraphOptions, cancel?: NativeCancelToken): Promise<NativeForwardBackwardStats>;
  logprobs(batch: NativePackedBatch, options?: { lora?: boolean; temperature?: number; entropy?: boolean }, cancel?: NativeCancelToken): Promise<{ logprobs: Float64Array; entropy?: Float64Array }>;
  step(options?: { lr?: number }): Promise<NativeStepResult>;
  zeroGrad(): Promise<void>;
  /** Sums the accumulated gradients over the ranks of the job (identity in a one-process world). */
  allReduceGradients(): Promise<void>;
  gradNorm(): Promise<number>;
  getState(): Promise<NativeTrainerState>;
  setState(state: NativeTrainerState): Promise<void>;
  setOptimizer(options: Partial<NativeOptimizerOptions>): Promise<void>;
  info(): { step: number; skippedSteps: number; recompute: boolean; logitsChunk: number; optimizer: NativeOptimizerOptions };
  dispose(): Promise<void>;
}

export interface NativeTensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  dataBegin: number;
  dataEnd: number;
}

/** A tensor as the native reader returns it: floating dtypes widened to Float64Array, integers in their own typed array. */
export interface NativeSafetensorsTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
}

export interface NativeSafetensorsHeader {
  tensors: { name: string; dtype: string; shape: number[] }[];
  metadata: Record<string, string>;
}

/** One tensor to write from float32 values; `length` (the values of a ready array) is checked against the shape up front. */
export interface NativeWriteTensorHeader {
  name: string;
  dtype: string;
  shape: number[];
  length?: number;
}

/** Streams one safetensors file: per tensor writeValues() then endTensor(); then commit(), or abort() to discard. */
export interface NativeSafetensorsWriter {
  writeValues(values: Float32Array): void;
  endTensor(): void;
  commit(): void;
  abort(): void;
}

export interface NativeBuildInfo {
  cudaCompiled: boolean;
  cudaDevices: number;
  blas: string;
  hardwareThreads: number;
}

/** The world of a data-parallel job, as the engine's collectives found it (cpp/collectives.h). */
export interface NativeWorldInfo {
  rank: number;
  size: number;
  /** Rank among the processes on this machine. */
  localRank: number;
  localSize: number;
  /** True when MPI is initialised (a launched job, even of one rank). */
  mpi: boolean;
}

/**
 * Collectives between the processes of a job (cpp/addon/native_collectives.cpp); ts/distributed/ wraps them.
 * The promises run in call order on every rank; arrays are worked on in place and must not be touched
 * until their promise settles.
 */
export interface NativeCollectives {
  builtWithMpi(): boolean;
  /** The world size an MPI launcher announced in this process's environment; 0 when none. */
  launcherWorldSize(): number;
  /** Initialises MPI when built with it and launched (idempotent); otherwise the world of one process. */
  init(): NativeWorldInfo;
  world(): NativeWorldInfo;
  allReduceSum<T extends Float64Array | Float32Array>(data: T): Promise<T>;
  broadcast(data: Uint8Array, root: number): Promise<Uint8Array>;
  barrier(): Promise<void>;
  allGather(value: string): Promise<string[]>;
  /** Prints `message` to stderr, then ends every process of the job with `code` (MPI_Abort). */
  abort(code: number, message?: string): never;
  finalize(): void;
}

export interface NativeAddon {
  loadModel(dir: string, options?: { backend?: string; threads?: number; device?: number; gemm?: string; precision?: string }): Promise<NativeModelHandle>;
  createTrainer(model: NativeModelHandle, options: { optimizer: NativeOptimizerOptions; recompute: boolean; logitsChunk: number }): Promise<NativeTrainerHandle>;
  CancelToken: new () => NativeCancelToken;
  buildInfo(): NativeBuildInfo;
  parseSafetensorsHeader(bytes: Uint8Array, fileSize?: number): NativeTensorEntry[];
  inspectSafetensors(path: string): NativeTensorEntry[];
  readSafetensors(path: string): NativeSafetensorsTensor[];
  readSafetensorsDir(dir: string): NativeSafetensorsTensor[];
  readSafetensorsHeader(path: string): NativeSafetensorsHeader;
  /** Validates tensors as the writer would; returns their byte sizes. */
  checkSafetensorsTensors(tensors: NativeWriteTensorHeader[]): number[];
  SafetensorsWriter: new (path: string, tensors: NativeWriteTensorHeader[], metadata: Record<string, string>) => NativeSafetensorsWriter;
  writeSafetensorsIndex(path: string, totalSize: number, weightMap: Record<string, string>): void;
  f32ToBf16Bits(x: number): number;
  f32ToF16Bits(x: number): number;
  bf16BitsToF32(bits: number): number;
  f16BitsToF32(bits: number): number;
  collectives: NativeCollectives;
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
