// `hayate init-model`: write a random-weight model in Hugging Face layout for a named shape or custom sizes.
import { Command } from 'commander';
import { HayateError } from '../errors.js';
import { MODEL_SHAPES, initModel, type Arch, type InitModelOptions, type ModelShapeName, type TokenizerKind } from '../init-model.js';
import type { WritableDtype } from '../safetensors.js';
import { reportAndExit } from './errors.js';
import { floatOption, intOption } from './parse.js';

interface InitModelCliOptions {
  shape: string;
  arch?: string;
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  maxPosition?: number;
  tied?: boolean;
  attentionBias?: boolean;
  ropeTheta?: number;
  dtype?: string;
  seed: number;
  std?: number;
  embeddingStd?: number;
  tokenizer?: string;
  maxShardMb?: number;
  overwrite?: boolean;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new HayateError('ERR_INVALID_ARGUMENT', `${name} must be one of ${allowed.join(', ')}, not '${value}'`);
  return value as T;
}

export function initModelCommand(): Command {
  return new Command('init-model')
    .description('write a random-weight model (config, safetensors, tokenizer) in Hugging Face layout')
    .argument('<dir>', 'output directory')
    .option('--shape <name>', `named shape: ${MODEL_SHAPES.join(', ')}`, 'tiny')
    .option('--arch <arch>', 'llama, qwen2 or qwen3 (default: the shape\'s)')
    .option('--vocab <n>', 'vocabulary (embedding rows)', intOption('--vocab', 1))
    .option('--hidden <n>', 'hidden size', intOption('--hidden', 1))
    .option('--intermediate <n>', 'MLP intermediate size', intOption('--intermediate', 1))
    .option('--layers <n>', 'decoder layers', intOption('--layers', 1))
    .option('--heads <n>', 'attention heads', intOption('--heads', 1))
    .option('--kv-heads <n>', 'key/value heads (GQA when fewer than heads)', intOption('--kv-heads', 1))
    .option('--head-dim <n>', 'head dimension', intOption('--head-dim', 2))
    .option('--max-position <n>', 'context length (max_position_embeddings)', intOption('--max-position', 1))
    .option('--tied', 'tie lm_head to the embedding')
    .option('--no-tied', 'separate lm_head')
    .option('--attention-bias', 'q/k/v/o biases (llama, qwen3; qwen2 always has q/k/v biases)')
    .option('--rope-theta <theta>', 'RoPE base', floatOption('--rope-theta', Number.MIN_VALUE))
    .option('--dtype <dtype>', 'weight dtype on disk: F32, BF16 or F16')
    .option('--seed <seed>', 'random seed', intOption('--seed', 0), 0)
    .option('--std <std>', 'standard deviation of weight matrices', floatOption('--std', 0))
    .option('--embedding-std <std>', 'standard deviation of the embedding and lm_head (default: --std)', floatOption('--embedding-std', 0))
    .option('--tokenizer <kind>', 'tiny (byte-level BPE made here) or qwen3 (the real Qwen3 tokenizer)')
    .option('--max-shard-mb <mb>', 'split weights into shards of at most this many MB (with an index file)', floatOption('--max-shard-mb', 0.001))
    .option('--overwrite', 'replace a model already in <dir>')
    .action(async (dir: string, o: InitModelCliOptions) => {
      try {
        const options: InitModelOptions = {
          shape: oneOf<ModelShapeName>('--shape', o.shape, MODEL_SHAPES),
          arch: oneOf<Arch>('--arch', o.arch, ['llama', 'qwen2', 'qwen3']),
          vocab: o.vocab,
          hidden: o.hidden,
          intermediate: o.intermediate,
          layers: o.layers,
          heads: o.heads,
          kvHeads: o.kvHeads,
          headDim: o.headDim,
          maxPosition: o.maxPosition,
          tied: o.tied,
          attentionBias: o.attentionBias,
          ropeTheta: o.ropeTheta,
          dtype: oneOf<WritableDtype>('--dtype', o.dtype, ['F32', 'BF16', 'F16']),
          seed: o.seed,
          std: o.std,
          embeddingStd: o.embeddingStd,
          tokenizer: oneOf<TokenizerKind>('--tokenizer', o.tokenizer, ['tiny', 'qwen3']),
          maxShardBytes: o.maxShardMb !== undefined ? Math.round(o.maxShardMb * 1024 * 1024) : undefined,
          overwrite: o.overwrite ?? false,
        };
        const tty = process.stderr.isTTY;
        const result = await initModel(dir, {
          ...options,
          onProgress: tty ? (p) => process.stderr.write(`\rwriting ${p.done}/${p.total} tensors`) : undefined,
        });
        if (tty) process.stderr.write('\n');
        const s = result.spec;
        process.stdout.write(
          `wrote ${result.dir}: ${s.arch} ${s.shape}, ${(result.parameters / 1e6).toFixed(2)}M parameters, ` +
            `${s.layers} layers, hidden ${s.hidden}, heads ${s.heads}/${s.kvHeads}, vocab ${s.vocab}, ${s.dtype}\n`,
        );
      } catch (err) {
        reportAndExit(err);
      }
    });
}
