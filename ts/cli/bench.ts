// `hayate bench`: the native benchmarks (kernels, GEMM, inference, training), recorded as JSON with the
// machine, date, command and commit.
import { resolve } from 'node:path';
import { Command } from 'commander';
import { benchJobArgs } from '../bench/jobs.js';
import { HayateError } from '../errors.js';
import { packageRoot, runNativeBench, writeBenchRecord } from '../bench/record.js';
import { reportAndExit } from './errors.js';
import { intOption } from './parse.js';

interface BenchCliOptions {
  out: string;
  threads: number;
  repeats?: number;
  backend?: string;
  ops?: string;
  shapes?: string;
  seqLens?: string;
  batches?: string;
  weights?: string;
  print?: boolean;
}

function record(name: string, job: string, o: BenchCliOptions, extra: Record<string, string | undefined>): void {
  const { args } = benchJobArgs(job, {
    threads: String(o.threads),
    repeats: o.repeats === undefined ? undefined : String(o.repeats),
    ops: o.ops,
    shapes: o.shapes,
    'seq-lens': o.seqLens,
    batches: o.batches,
    ...extra,
  });
  const rec = runNativeBench(name, args);
  if (o.print) process.stdout.write(JSON.stringify(rec, null, 2) + '\n');
  const file = writeBenchRecord(rec, resolve(o.out));
  process.stderr.write(`hayate: ${name} -> ${file}\n`);
}

/** Wraps an action so any failure prints one line and exits with the CLI's code. */
function guarded<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (e) {
      reportAndExit(e);
    }
  };
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('--out <dir>', 'directory for the JSON result', resolve(packageRoot, 'bench', 'results'))
    .option('--threads <n>', 'CPU threads (0 = all cores)', intOption('--threads', 0, 4096), 0)
    .option('--print', 'also print the record on stdout');
}

export function benchCommand(): Command {
  const bench = new Command('bench').description('run native benchmarks and record the results as JSON (bench/results/ by default)');
  bench.addCommand(
    withCommon(new Command('kernels'))
      .description("each op's kernel vs a baseline on the same device (CUDA: unfused kernels / cuBLAS; CPU: scalar loops): median time, TFLOP/s or GB/s, speedup")
      .option('--backend <name>', 'cuda or cpu', 'cuda')
      .option('--ops <list>', 'comma-separated ops (default: all): linear, lora_linear, lora_linear_backward, embedding, rmsnorm, add, swiglu, rope, kv_store, paged_attention, attention_forward, attention_backward, log_softmax_gather, sample, adamw')
      .option('--shapes <list>', 'attention shapes, comma-separated SxL or SxL:hq/hkv/hd (sequences x length; default per backend)')
      .option('--repeats <n>', 'timed repeats after warm-up', intOption('--repeats', 1, 100000))
      .action(guarded((o: BenchCliOptions) => {
        if (o.backend !== 'cuda' && o.backend !== 'cpu') throw new HayateError('ERR_INVALID_ARGUMENT', `--backend must be cuda or cpu, not '${o.backend}'`);
        record(`kernels-${o.backend}`, `kernels:${o.backend}`, o, {});
      })),
  );
  bench.addCommand(
    withCommon(new Command('gemm'))
      .description('GEMM GFLOP/s: the engine vs the BLAS called directly, on the model shapes')
      .option('--repeats <n>', 'timed repeats', intOption('--repeats', 1, 100000))
      .action(guarded((o: BenchCliOptions) => {
        record('gemm', 'gemm', o, {});
      })),
  );
  bench.addCommand(
    withCommon(new Command('model'))
      .description('prefill and decode tokens/s and peak memory of a random model of a named shape')
      .argument('<shape>', 'tiny or qwen3-0.6b')
      .option('--backend <name>', 'cpu or cuda', 'cpu')
      .option('--batches <list>', 'batch sizes', '1,8,64')
      .option('--weights <dtype>', 'CPU: the random model\'s frozen weights, f32 or bf16', 'f32')
      .action(guarded((shape: string, o: BenchCliOptions) => {
        record(`model-${shape}${o.backend === 'cuda' ? '-cuda' : ''}${o.weights === 'bf16' ? '-bf16' : ''}`, `model:${shape}`, o, { backend: o.backend, weights: o.weights });
      })),
  );
  bench.addCommand(
    withCommon(new Command('train'))
      .description('LoRA forward+backward (GRPO loss) tokens/s and peak memory, with and without recomputation')
      .argument('<shape>', 'tiny or qwen3-0.6b')
      .option('--seq-lens <list>', 'sequence lengths (default tiny 64,256; qwen3-0.6b 128,512)')
      .option('--weights <dtype>', 'CPU: the random model\'s frozen weights, f32 or bf16', 'f32')
      .action(guarded((shape: string, o: BenchCliOptions) => {
        record(`train-${shape}${o.weights === 'bf16' ? '-bf16' : ''}`, `train:${shape}`, o, { weights: o.weights });
      })),
  );
  return bench;
}
