// Runs the native benchmarks and records their results in bench/results/<name>-<device>-<date>.json together
// with the machine, date, command and commit, so every figure quoted in the README has a raw result behind it.
//   npm run bench -- [gemm] [peak] [model:tiny] [model:qwen3-0.6b] [train:tiny] [train:qwen3-0.6b] [kernels:cpu]
//                    [kernels:cuda] [--threads N] [--repeats R] [--seq-lens 128,512] [--ops a,b]
import { join } from 'node:path';
import { benchJobArgs, BENCH_JOBS } from '../ts/bench/jobs.js';
import { packageRoot, runNativeBench, writeBenchRecord } from '../ts/bench/record.js';

const argv = process.argv.slice(2);
const flags: Record<string, string> = {};
const jobs: string[] = [];
for (let i = 0; i < argv.length; ++i) {
  if (argv[i].startsWith('--')) flags[argv[i].slice(2)] = argv[++i] ?? '';
  else jobs.push(argv[i]);
}
const selected = jobs.length > 0 ? jobs : ['peak', 'gemm', 'model:tiny', 'model:qwen3-0.6b', 'train:tiny', 'train:qwen3-0.6b', 'kernels:cpu'];

try {
  for (const job of selected) {
    const { name, args } = benchJobArgs(job, flags);
    process.stderr.write(`bench ${name}: hayate_bench ${args.join(' ')}\n`);
    const file = writeBenchRecord(runNativeBench(name, args), join(packageRoot, 'bench', 'results'));
    process.stderr.write(`  -> ${file}\n`);
  }
} catch (e) {
  process.stderr.write(`bench: ${(e as Error).message}\n(jobs: ${BENCH_JOBS})\n`);
  process.exit(1);
}
