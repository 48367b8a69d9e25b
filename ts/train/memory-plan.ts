// What a GRPO run holds in memory by engine layout, for the CLI's start-up line: the frozen weights (once
// with a shared-base generator context, twice with a copy), the LoRA snapshot handed to the generator
// before each batch, and the generator's KV-cache budget. Estimates from the model's shapes; the trainer's
// activations come on top (they depend on the batch's lengths).
import type { NativeLoraTarget, NativeModelInfo } from '../native.js';

export type GeneratorLayout = 'shared' | 'copy' | 'none';

export interface MemoryPlanInput {
  /** The policy model's info (shapes, backend, weight bytes). */
  info: NativeModelInfo;
  generator: GeneratorLayout;
  /** LoRA rank and adapted (layer, projection) pairs. */
  lora: { rank: number; modules: readonly { layer: number; target: NativeLoraTarget }[] };
  /** Prompts generated per step on this process, completions per prompt, max new tokens. */
  promptsPerStep: number;
  numGenerations: number;
  maxCompletionLength: number;
  /** Longest prompt in tokens (of the dataset, or of a sample of it). */
  longestPrompt: number;
  /** The generator's KV-cache capacity when set (tokens). */
  kvCacheTokens?: number;
  /** 0: on-policy, no snapshot is taken on one engine (default 1). */
  offPolicySteps?: 0 | 1;
}

export interface MemoryPlan {
  /** Frozen weights of the policy's engine (RoPE table included). */
  weightBytes: number;
  /** Weights held by the generator on top: a copy's, 0 when shared or none. */
  generatorWeightBytes: number;
  /** The LoRA tensors (A and B, f32) once. */
  loraBytes: number;
  /** Per batch: the host snapshot of the LoRA tensors, plus the generator's own adapters with a separate generator. */
  loraSnapshotBytes: number;
  kvCacheTokens: number;
  kvCacheBytes: number;
  /** weights + generator weights + LoRA snapshot + KV cache. */
  totalBytes: number;
}

const KV_BLOCK = 16; // the generator's KV block size in tokens
const KV_CACHE_CAP_BYTES = 8 * 2 ** 30; // the generator's default cap (GenerationOptions.kv_cache_bytes)

/** [out, in] of a projection, as cpp/lora.cpp lora_target_shape. */
export function loraTargetShape(info: NativeModelInfo, target: NativeLoraTarget): [number, number] {
  const D = info.hiddenSize, F = info.intermediateSize, q = info.numHeads * info.headDim, kv = info.numKvHeads * info.headDim;
  switch (target) {
    case 'q_proj': return [q, D];
    case 'k_proj':
    case 'v_proj': return [kv, D];
    case 'o_proj': return [D, q];
    case 'gate_proj':
    case 'up_proj': return [F, D];
    case 'down_proj': return [D, F];
  }
  return [0, 0];
}

/** A and B elements of the adapters: r * (in + out) per module. */
export function loraParameterCount(info: NativeModelInfo, rank: number, modules: readonly { target: NativeLoraTarget }[]): number {
  return modules.reduce((n, m) => {
    const [out, inp] = loraTargetShape(info, m.target);
    return n + rank * (inp + out);
  }, 0);
}

/** KV-cache bytes per token: K and V of every layer, in the activation dtype (bf16 on CUDA, f32 or f64 on the CPU). */
export function kvBytesPerToken(info: NativeModelInfo): number {
  const bytes = info.backend === 'cuda' ? 2 : info.precision === 'f64' ? 8 : 4;
  return 2 * info.numLayers * info.numKvHeads * info.headDim * bytes;
}

export function memoryPlan(p: MemoryPlanInput): MemoryPlan {
  const weightBytes = p.info.weightBytes;
  const generatorWeightBytes = p.generator === 'copy' ? weightBytes : 0;
  const loraBytes = 4 * loraParameterCount(p.info, p.lora.rank, p.lora.modules);
  const loraSnapshotBytes = loraBytes * (p.generator !== 'none' ? 2 : p.offPolicySteps === 0 ? 0 : 1);
  const perToken = kvBytesPerToken(p.info);
  // each prompt is prefilled once and its G samples share its blocks (generator.cpp plan_blocks)
  const blocks = (n: number) => Math.ceil(n / KV_BLOCK);
  const wanted = p.promptsPerStep * (blocks(p.longestPrompt) + p.numGenerations * blocks(p.maxCompletionLength + KV_BLOCK - 1)) * KV_BLOCK;
  const kvCacheTokens = p.kvCacheTokens ?? Math.min(wanted, Math.floor(KV_CACHE_CAP_BYTES / (perToken * KV_BLOCK)) * KV_BLOCK);
  const kvCacheBytes = kvCacheTokens * perToken;
  return { weightBytes, generatorWeightBytes, loraBytes, loraSnapshotBytes, kvCacheTokens, kvCacheBytes, totalBytes: weightBytes + generatorWeightBytes + loraSnapshotBytes + kvCacheBytes };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** One line: "memory plan: weights 2.23 GiB (once: trainer and generator share them), LoRA snapshot ..., KV cache ...". */
export function describeMemoryPlan(plan: MemoryPlan, generator: GeneratorLayout): string {
  const weights =
    generator === 'copy'
      ? `weights ${formatBytes(plan.weightBytes)} x 2 = ${formatBytes(plan.weightBytes + plan.generatorWeightBytes)} (--generator copy: the generator holds its own copy; --generator shared holds them once)`
      : generator === 'shared'
        ? `weights ${formatBytes(plan.weightBytes)} (once: the trainer and the generator context share them)`
        : `weights ${formatBytes(plan.weightBytes)} (one engine)`;
  const snapshot = generator === 'none' ? (plan.loraSnapshotBytes === 0 ? 'none on-policy' : 'host copy') : "host copy + the generator's adapters";
  return (
    `memory plan: ${weights}; LoRA snapshot ${formatBytes(plan.loraSnapshotBytes)} (${snapshot}, ${formatBytes(plan.loraBytes)} each); ` +
    `KV cache up to ${formatBytes(plan.kvCacheBytes)} (${plan.kvCacheTokens} tokens); total ${formatBytes(plan.totalBytes)} before the trainer's activations`
  );
}
