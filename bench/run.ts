// Runs the native benchmarks and records their results in bench/results/<name>-<date>.json together with
// the machine, date, command and commit, so every figure quoted in the README has a raw result behind it.
//   npm run bench -- [gemm] [model:tiny] [model:qwen3-0.6b] [--threads N] [--repeats R]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, totalmem, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const exe = join(root, 'build-cmake', 'hayate_bench');

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function machine(): Record<string, unknown> {
  const c = cpus();
  let gpu = 'none';
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  if (smi.status === 0 && smi.stdout.trim()) gpu = smi.stdout.trim();
  return { hostname: hostname(), platform: `${platform()} ${release()}`, cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), gpu, node: process.version };
}

function run(name: string, args: string[]): void {
  const started = new Date();
  process.stderr.write(`bench ${name}: ${exe} ${args.join(' ')}\n`);
  const out = execFileSync(exe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  const record = {
    name,
    date: started.toISOString(),
    command: `${['build-cmake/hayate_bench', ...args].join(' ')}`,
    commit: git(['rev-parse', 'HEAD']),
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    machine: machine(),
    seconds: (Date.now() - started.getTime()) / 1000,
    result: JSON.parse(out),
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${record.machine.cores}core-${started.toISOString().slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  process.stderr.write(`  -> ${file}\n`);
}

const argv = process.argv.slice(2);
const flag = (n: string, d: string) => {
  const i = argv.indexOf(n);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : d;
};
const threads = flag('--threads', '0');
const jobs = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const selected = jobs.length > 0 ? jobs : ['gemm', 'model:tiny', 'model:qwen3-0.6b'];

if (!existsSync(exe)) {
  process.stderr.write(`bench: ${exe} not found; build first with \`npm run build:native\`\n`);
  process.exit(1);
}
for (const job of selected) {
  if (job === 'gemm') run('gemm', ['gemm', '--threads', threads, '--repeats', flag('--repeats', '5')]);
  else if (job.startsWith('model:')) {
    const shape = job.slice('model:'.length);
    const long = shape === 'tiny' ? ['--prompt-len', '64', '--gen-len', '64'] : ['--prompt-len', flag('--prompt-len', '32'), '--gen-len', flag('--gen-len', '16')];
    run(`model-${shape}`, ['model', '--shape', shape, '--batches', flag('--batches', '1,8,64'), '--threads', threads, ...long]);
  } else {
    process.stderr.write(`bench: unknown job '${job}' (gemm, model:tiny, model:qwen3-0.6b)\n`);
    process.exit(2);
  }
}
