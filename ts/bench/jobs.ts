// The named benchmark jobs and the hayate_bench arguments each one runs with.
import { HayateError } from '../errors.js';

export const BENCH_JOBS = 'gemm, peak, model:<tiny|qwen3-0.6b>, train:<tiny|qwen3-0.6b>, kernels:<cpu|cuda>';

export interface BenchJobFlags {
  threads?: string;
  repeats?: string;
  batches?: string;
  'prompt-len'?: string;
  'gen-len'?: string;
  'seq-lens'?: string;
  ops?: string;
  shapes?: string;
  backend?: string;
  /** CPU: frozen weights of the random model, f32 (the default) or bf16 */
  weights?: string;
}

/** Maps a job name ("train:qwen3-0.6b") and flags to the record name and hayate_bench arguments. */
export function benchJobArgs(job: string, f: BenchJobFlags): { name: string; args: string[] } {
  const threads = f.threads ?? '0';
  const [kind, sub] = job.split(':', 2) as [string, string | undefined];
  if (kind === 'gemm' && sub === undefined) return { name: 'gemm', args: ['gemm', '--threads', threads, '--repeats', f.repeats ?? '5'] };
  if (kind === 'peak' && sub === undefined) return { name: 'peak', args: ['peak', '--threads', threads] };
  if (kind === 'model' && sub) {
    const tiny = sub === 'tiny';
    return {
      name: `model-${sub}${f.weights === 'bf16' ? '-bf16' : ''}`,
      args: ['model', '--shape', sub, '--batches', f.batches ?? '1,8,64', '--threads', threads, '--backend', f.backend ?? 'cpu',
        '--prompt-len', f['prompt-len'] ?? (tiny ? '64' : '32'), '--gen-len', f['gen-len'] ?? (tiny ? '64' : '16'),
        ...(f.weights ? ['--weights', f.weights] : [])],
    };
  }
  if (kind === 'train' && sub) {
    return { name: `train-${sub}${f.weights === 'bf16' ? '-bf16' : ''}`, args: ['train', '--shape', sub, '--seq-lens', f['seq-lens'] ?? (sub === 'tiny' ? '64,256' : '128,512'), '--threads', threads,
      ...(f.weights ? ['--weights', f.weights] : [])] };
  }
  if (kind === 'kernels' && (sub === 'cpu' || sub === 'cuda')) {
    return { name: `kernels-${sub}`, args: ['kernels', '--backend', sub, '--repeats', f.repeats ?? '20', ...(f.ops ? ['--ops', f.ops] : []), ...(f.shapes ? ['--shapes', f.shapes] : [])] };
  }
  throw new HayateError('ERR_INVALID_ARGUMENT', `unknown benchmark job '${job}' (${BENCH_JOBS})`);
}
