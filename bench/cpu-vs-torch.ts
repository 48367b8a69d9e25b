// hayate's CPU engine against eager PyTorch on the same machine, in one run: the training step
// (`hayate_bench train`: LoRA r = 32 on every projection, GRPO loss, one packed sequence) and rollout
// generation (`hayate_bench model`: prefill and decode at a batch), next to bench/baselines/torch_cpu.py on
// the same shape, threads and workloads; plus `hayate_bench peak`, so each figure is also a fraction of
// the machine's limits. The two engines alternate, `--rounds` times, and the best of each is kept.
//
//   npx tsx bench/cpu-vs-torch.ts [--shape qwen3-0.6b] [--threads 2] [--seq-len 512] [--batch 64] [--rounds 2]
//
// Recorded in bench/results/cpu-vs-torch-<cores>core-<date>.json (with the load average before and after).
// Without PyTorch (python3 -c 'import torch' fails) hayate's side is still measured and the record says so.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchExecutable, packageRoot, scriptBenchRecord, writeBenchRecord } from '../ts/bench/record.js';
import { median } from '../ts/bench/stats.js';

const { values: v } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen3-0.6b' },
    threads: { type: 'string', default: '2' },
    'seq-len': { type: 'string', default: '512' },
    batch: { type: 'string', default: '64' },
    'prompt-len': { type: 'string', default: '32' },
    'gen-len': { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    // hayate's frozen weights: bf16 (what a bf16 checkpoint such as Qwen3's loads as by default) or f32
    weights: { type: 'string', default: 'bf16' },
    // batch-1 decode, measured against the memory-bandwidth roofline (weight bytes read per token)
    'decode1-gen-len': { type: 'string', default: '64' },
  },
});
const started = new Date();
const loadBefore = loadavg();
const exe = process.env.HAYATE_BENCH_EXE ?? benchExecutable();

function json(cmd: string, args: string[]): Record<string, any> {
  process.stderr.write(`cpu-vs-torch: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
  return JSON.parse(r.stdout);
}

// the first Python that has torch (Debian's python3-torch lives in /usr/bin/python3, which a pyenv shim may hide)
const python = [process.env.PYTHON, 'python3', '/usr/bin/python3'].find((p) => p && spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);
const torchFound = python !== undefined;
// The peak is measured every round (memory read bandwidth varies from run to run on a shared machine); the
// best of the rounds is the limit the figures are compared with.
const peaks: Record<string, any>[] = [];
const best = (xs: number[]) => Math.max(...xs.filter((x) => Number.isFinite(x)));
const hayate = { trainTps: [] as number[], prefillTps: [] as number[], decodeTps: [] as number[], decode1Tps: [] as number[], rssBatch1Mb: [] as number[], raw: [] as unknown[],
  decode1Adjacent: [] as { decodeTokensPerS: number; readGBsBefore: number; readGBsAfter: number; fractionOfRoofline: number }[] };
let weightMb = NaN;
const torch = { trainTps: [] as number[], prefillTps: [] as number[], decodeTps: [] as number[], raw: [] as unknown[] };
for (let round = 0; round < Number(v.rounds); round++) {
  peaks.push(json(exe, ['peak', '--threads', v.threads!]));
  const train = json(exe, ['train', '--shape', v.shape!, '--seq-lens', v['seq-len']!, '--recompute', 'off', '--threads', v.threads!, '--weights', v.weights!]);
  const gen = json(exe, ['model', '--shape', v.shape!, '--batches', v.batch!, '--prompt-len', v['prompt-len']!, '--gen-len', v['gen-len']!, '--threads', v.threads!, '--weights', v.weights!]);
  // its own process, so its peak resident memory is batch 1's; the memory read bandwidth measured just
  // before and just after it is the limit this run is compared with
  const bwBefore = json(exe, ['peak', '--memory-only', '--threads', v.threads!]);
  const gen1 = json(exe, ['model', '--shape', v.shape!, '--batches', '1', '--prompt-len', '8', '--gen-len', v['decode1-gen-len']!, '--threads', v.threads!, '--weights', v.weights!]);
  const bwAfter = json(exe, ['peak', '--memory-only', '--threads', v.threads!]);
  const adjacentGBs = (Number(bwBefore.memory_read?.all_threads ?? NaN) + Number(bwAfter.memory_read?.all_threads ?? NaN)) / 2;
  hayate.decode1Adjacent.push({ decodeTokensPerS: gen1.runs[0].decode_tokens_per_s, readGBsBefore: bwBefore.memory_read?.all_threads, readGBsAfter: bwAfter.memory_read?.all_threads,
    fractionOfRoofline: (gen1.runs[0].decode_tokens_per_s * gen1.weight_mb * 1048576) / (adjacentGBs * 1e9) });
  hayate.trainTps.push(train.runs[0].tokens_per_s);
  hayate.prefillTps.push(gen.runs[0].prefill_tokens_per_s);
  hayate.decodeTps.push(gen.runs[0].decode_tokens_per_s);
  hayate.decode1Tps.push(gen1.runs[0].decode_tokens_per_s);
  hayate.rssBatch1Mb.push(gen1.runs[0].process_peak_rss_mb);
  weightMb = gen1.weight_mb;
  hayate.raw.push({ train, generate: gen, generateBatch1: gen1 });
  if (!torchFound) continue;
  const t = json(python!, [join(packageRoot, 'bench', 'baselines', 'torch_cpu.py'), '--shape', v.shape!, '--threads', v.threads!, '--seq-lens', v['seq-len']!,
    '--batches', v.batch!, '--prompt-len', v['prompt-len']!, '--gen-len', v['gen-len']!]);
  torch.trainTps.push(t.train[0].tokens_per_s);
  torch.prefillTps.push(t.generate[0].prefill_tokens_per_s);
  torch.decodeTps.push(t.generate[0].decode_tokens_per_s);
  torch.raw.push(t);
}
// Batch-1 decode reads every weight once per token (the lm head included; the KV cache of a short context is
// small next to them): its roofline is the measured all-thread memory read bandwidth over the weight bytes.
// This machine's bandwidth swings (35-75 GB/s within minutes on a shared host), so each round's decode is
// set against the bandwidth measured on either side of it, and the median of those fractions is reported.
const readGBs = best(peaks.map((p) => Number(p.memory_read?.all_threads ?? NaN)));
const rooflineTps = (readGBs * 1e9) / (weightMb * 1048576);
const fractions = hayate.decode1Adjacent.map((r) => r.fractionOfRoofline).sort((a, b) => a - b);
const summary = {
  shape: v.shape, threads: Number(v.threads), seqLen: Number(v['seq-len']), batch: Number(v.batch), weights: v.weights,
  hayate: {
    trainTokensPerS: best(hayate.trainTps), prefillTokensPerS: best(hayate.prefillTps), decodeTokensPerS: best(hayate.decodeTps),
    decodeBatch1TokensPerS: best(hayate.decode1Tps),
    // against the bandwidth measured next to each round (median, lowest, highest over the rounds)
    decodeBatch1FractionOfRoofline: median(fractions), decodeBatch1FractionOfRooflineRange: [fractions[0], fractions[fractions.length - 1]],
    // the best decode against the best bandwidth of any round: a lower bound when the two came from different moments
    decodeBatch1RooflineTokensPerS: rooflineTps, decodeBatch1FractionOfBestRoofline: best(hayate.decode1Tps) / rooflineTps,
    weightMb, peakRssBatch1Mb: Math.min(...hayate.rssBatch1Mb),
  },
  torch: torchFound ? { trainTokensPerS: best(torch.trainTps), prefillTokensPerS: best(torch.prefillTps), decodeTokensPerS: best(torch.decodeTps) } : 'PyTorch not installed (apt-get install python3-torch)',
};
const ratio = torchFound
  ? { train: summary.hayate.trainTokensPerS / best(torch.trainTps), prefill: summary.hayate.prefillTokensPerS / best(torch.prefillTps), decode: summary.hayate.decodeTokensPerS / best(torch.decodeTps) }
  : undefined;
const argv = process.argv.slice(2);
const record = scriptBenchRecord('cpu-vs-torch', `npx tsx bench/cpu-vs-torch.ts ${argv.join(' ')}`.trim(), started, {
  summary, hayateOverTorch: ratio, python: python ?? null, openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null, peak: peaks, memoryReadGBs: readGBs, decodeBatch1ByRound: hayate.decode1Adjacent, loadAverage: { before: loadBefore, after: loadavg() }, rounds: { hayate: hayate.raw, torch: torch.raw },
});
const file = writeBenchRecord(record, join(packageRoot, 'bench', 'results'));
process.stdout.write(`${JSON.stringify({ summary, hayateOverTorch: ratio }, null, 1)}\nrecorded in ${file}\n`);
