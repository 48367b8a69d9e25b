// Rollouts overlapping updates: peak resident memory and GRPO steps/s of `hayate train` with
//   - serial:     --generator none    one engine with all cores; generation and update take turns
//                 (none-half: the same on half the cores, the trainer's share in the overlapped runs)
//   - overlapped: --generator shared  (the default) a generation context on the same weights in memory:
//                 the next batch is generated while the update runs, cores split between the two
//   - copy:       --generator copy    the same overlap with a second copy of the weights
// on the tiny and qwen3-0.6b shapes (random weights, `hayate init-model --shape ...`), recorded in
// bench/results/grpo-overlap-<cores>core-<date>.json with the machine, date, command and commit.
// Peak RSS is /usr/bin/time -v's maximum resident set size of the CLI process (loading included: the
// safetensors file is memory-mapped while the weights are converted), plus the peak of VmRSS sampled
// every 20 ms once training has started (after the start-up lines). Steps/s leave step 1 (warm-up) out.
// Every configuration trains the same run (same seed, built-in batch-invariant GEMM), so their metrics
// must agree apart from timing; the record says whether they do.
//   npx tsx bench/overlap.ts [--tiny-steps 6] [--big-steps 3] [--skip-big]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel } from '../ts/init-model.js';
import { readMetrics, type MetricsRecord } from '../ts/metrics/writer.js';
import { packageRoot, scriptBenchRecord, writeBenchRecord, type BenchRecord } from '../ts/bench/record.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const tinySteps = flag('tiny-steps', 6);
const bigSteps = flag('big-steps', 3);
const skipBig = argv.includes('--skip-big');
const cores = availableParallelism();
const cli = join(packageRoot, 'dist', 'cli', 'main.js');
if (!existsSync('/usr/bin/time')) throw new Error('/usr/bin/time is needed (apt-get install time)');

const work = mkdtempSync(join(tmpdir(), 'hayate-bench-overlap-'));

/** none-half: serial on half the cores (the trainer's share in the overlapped runs), to separate thread scaling from overlap. */
type Layout = 'none' | 'none-half' | 'shared' | 'copy';
interface Shape {
  name: 'tiny' | 'qwen3-0.6b';
  prompts: number;
  G: number;
  tokens: number;
  steps: number;
  layouts: Layout[];
}

interface RunResult {
  generator: Layout;
  command: string;
  /** /usr/bin/time -v maximum resident set size of the CLI (the whole run, loading included). */
  peakRssBytes: number;
  /** Peak VmRSS sampled while training (after the start-up lines). */
  peakRssTrainingBytes: number;
  /** The CLI's memory plan line. */
  memoryPlan: string;
  stepsPerSecond: number;
  stepSeconds: number[];
  generationSeconds: number[];
  trainingSeconds: number[];
  metrics: MetricsRecord[];
}

function childPid(pid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length > 0 ? Number(kids[0]) : undefined;
  } catch {
    return undefined;
  }
}

function vmRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function run(model: string, shape: Shape, generator: Layout): Promise<RunResult> {
  const out = join(work, `out-${shape.name}-${generator}`);
  // serial: one engine with every core; overlapped and copy: the CLI's default split (half each)
  const threads = generator === 'none' ? ['--threads', String(cores)] : generator === 'none-half' ? ['--threads', String(Math.max(1, Math.ceil(cores / 2)))] : [];
  const args = [
    cli, 'train', model, '--data', 'synthetic:1', '--synthetic-count', '400', '-G', String(shape.G), '-P', String(shape.prompts),
    '-m', String(shape.tokens), '--max-steps', String(shape.steps), '--generator', generator === 'none-half' ? 'none' : generator, ...threads, '--gemm', 'builtin',
    '--seed', '1', '--sample-steps', '0', '--no-plot', '-o', out,
  ];
  const child = spawn('/usr/bin/time', ['-v', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let training = false;
  let peakTraining = 0;
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (!training && /memory plan:/.test(stderr)) training = true;
  });
  const timer = setInterval(() => {
    const pid = child.pid !== undefined ? childPid(child.pid) : undefined;
    if (training && pid !== undefined) peakTraining = Math.max(peakTraining, vmRss(pid));
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`hayate train (${shape.name}, --generator ${generator}) failed (${code}): ${stderr}`);
  const maxRss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const plan = /hayate: (memory plan: .*)/.exec(stderr);
  const metrics = readMetrics(join(out, 'metrics.jsonl'));
  const stepSeconds = metrics.map((m) => m.step_time as number);
  const timed = stepSeconds.slice(1);
  rmSync(out, { recursive: true, force: true });
  return {
    generator,
    command: ['node', ...args.map((a) => a.replace(work, '$WORK').replace(packageRoot + '/', ''))].join(' '),
    peakRssBytes: maxRss ? Number(maxRss[1]) * 1024 : 0,
    peakRssTrainingBytes: peakTraining,
    memoryPlan: plan ? plan[1] : '',
    stepsPerSecond: timed.length / timed.reduce((a, b) => a + b, 0),
    stepSeconds,
    generationSeconds: metrics.map((m) => m['timing/generation_s'] as number),
    trainingSeconds: metrics.map((m) => m['timing/training_s'] as number),
    metrics,
  };
}

const withoutTiming = (rows: MetricsRecord[]) =>
  rows.map((m) => JSON.stringify(Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('timing/') && k !== 'step_time' && k !== 'tokens_per_second'))));

/** Bytes from the memory plan line's "LoRA snapshot X" and "KV cache up to Y". */
function planBytes(line: string, label: RegExp): number {
  const m = label.exec(line);
  if (!m) return 0;
  const unit = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 }[m[2] as 'B'];
  return Number(m[1]) * unit;
}

const shapes: Shape[] = [
  { name: 'tiny', prompts: 8, G: 8, tokens: 32, steps: tinySteps, layouts: ['none', 'none-half', 'shared', 'copy'] },
  ...(skipBig ? [] : [{ name: 'qwen3-0.6b' as const, prompts: 2, G: 2, tokens: 8, steps: bigSteps, layouts: ['none', 'none-half', 'shared', 'copy'] as Layout[] }]),
];

const started = new Date();
const loadBefore = loadavg();
const results: Record<string, unknown> = {};
for (const shape of shapes) {
  const model = join(work, `model-${shape.name}`);
  await initModel(model, { shape: shape.name, seed: 1 });
  const runs: Partial<Record<Layout, RunResult>> = {};
  for (const layout of shape.layouts) {
    process.stderr.write(`${shape.name}: --generator ${layout} ...\n`);
    runs[layout] = await run(model, shape, layout);
    process.stderr.write(`  ${runs[layout]!.stepsPerSecond.toFixed(3)} steps/s, peak RSS ${(runs[layout]!.peakRssBytes / 2 ** 20).toFixed(0)} MiB (training ${(runs[layout]!.peakRssTrainingBytes / 2 ** 20).toFixed(0)} MiB)\n`);
  }
  const serial = runs.none as RunResult;
  const shared = runs.shared as RunResult;
  const lora = planBytes(shared.memoryPlan, /LoRA snapshot ([\d.]+) (B|KiB|MiB|GiB)/);
  const kv = planBytes(shared.memoryPlan, /KV cache up to ([\d.]+) (B|KiB|MiB|GiB)/);
  const bound = (serial.peakRssBytes + lora + kv) * 1.1;
  const boundTraining = (serial.peakRssTrainingBytes + lora + kv) * 1.1;
  const reference = withoutTiming(serial.metrics);
  results[shape.name] = {
    batch: { prompts: shape.prompts, completionsPerPrompt: shape.G, maxCompletionTokens: shape.tokens, steps: shape.steps },
    runs: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, { ...r, metrics: undefined }])),
    memoryCheck: {
      rule: 'overlapped peak RSS <= (serial peak RSS + LoRA snapshot + KV cache) x 1.1',
      loraSnapshotBytes: lora,
      kvCacheBytes: kv,
      boundBytes: Math.round(bound),
      pass: shared.peakRssBytes <= bound,
      boundTrainingBytes: Math.round(boundTraining),
      passTraining: shared.peakRssTrainingBytes <= boundTraining,
      copyOverSerialBytes: runs.copy ? runs.copy.peakRssBytes - serial.peakRssBytes : undefined,
      sharedOverSerialBytes: shared.peakRssBytes - serial.peakRssBytes,
    },
    speedup: {
      shared: shared.stepsPerSecond / serial.stepsPerSecond,
      copy: runs.copy ? runs.copy.stepsPerSecond / serial.stepsPerSecond : undefined,
      sharedOverSerialHalfCores: runs['none-half'] ? shared.stepsPerSecond / runs['none-half'].stepsPerSecond : undefined,
    },
    sameResults: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, JSON.stringify(withoutTiming(r.metrics)) === JSON.stringify(reference)])),
  };
}

const record: BenchRecord = scriptBenchRecord('grpo-overlap', `npx tsx bench/overlap.ts --tiny-steps ${tinySteps} --big-steps ${bigSteps}${skipBig ? ' --skip-big' : ''}`, started, {
    note:
      'serial = --generator none with --threads = all cores (none-half: ceil(cores/2), the trainer\'s share below); shared (the default) and copy split the cores (trainer ceil(n/2), generator floor(n/2)). ' +
      'steps/s over steps 2..N (step 1 is warm-up); peak RSS from /usr/bin/time -v (whole process, loading included) and VmRSS sampled every 20 ms while training',
    cores,
    /** 1/5/15-minute load averages before and after: other work on the machine shows here. */
    loadAverage: { before: loadBefore, after: loadavg() },
    ...results,
  });
const file = writeBenchRecord(record, join(packageRoot, 'bench', 'results'));
process.stderr.write(`-> ${file}\n`);
rmSync(work, { recursive: true, force: true });
