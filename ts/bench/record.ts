// Benchmark records: runs the native benchmark executable (build-cmake/hayate_bench, built with the addon)
// and stores its JSON with the machine, date, command and commit, so every figure quoted anywhere has a raw
// result behind it. Shared by `hayate bench` and `npm run bench`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, hostname, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HayateError } from '../errors.js';

/** The package root (ts/bench or dist/bench → two levels up). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function benchExecutable(root = packageRoot): string {
  const exe = join(root, 'build-cmake', 'hayate_bench');
  if (!existsSync(exe)) {
    throw new HayateError('ERR_NOT_FOUND', `${exe} not found: build the native engine first with \`npm run build:native\``);
  }
  return exe;
}

export interface MachineInfo {
  hostname: string;
  platform: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  gpu: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  let gpu = 'none';
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  if (smi.status === 0 && smi.stdout.trim()) gpu = smi.stdout.trim();
  return {
    hostname: hostname(),
    platform: `${platform()} ${release()}`,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    gpu,
    node: process.version,
  };
}

function git(root: string, args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export interface BenchRecord {
  name: string;
  date: string;
  command: string;
  commit: string;
  dirty: boolean;
  machine: MachineInfo;
  seconds: number;
  result: unknown;
}

/**
 * A record of a benchmark run from a script (not hayate_bench): name, the command that reproduces it, when
 * it started, the commit (and whether the tree was dirty), the machine and its result.
 */
export function scriptBenchRecord(name: string, command: string, started: Date, result: unknown, root = packageRoot): BenchRecord {
  return {
    name,
    date: started.toISOString(),
    command,
    commit: git(root, ['rev-parse', 'HEAD']),
    dirty: git(root, ['status', '--porcelain', '--untracked-files=no']) !== '',
    machine: machineInfo(),
    seconds: (Date.now() - started.getTime()) / 1000,
    result,
  };
}

/** Runs `hayate_bench <args>` (progress on stderr passes through) and returns the record of its JSON output. */
export function runNativeBench(name: string, args: string[], root = packageRoot): BenchRecord {
  const exe = benchExecutable(root);
  const started = new Date();
  const run = spawnSync(exe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  if (run.error) throw new HayateError('ERR_BACKEND', `could not run ${exe}: ${run.error.message}`);
  if (run.status !== 0) {
    throw new HayateError(run.status === 2 ? 'ERR_INVALID_ARGUMENT' : 'ERR_BACKEND', `benchmark '${name}' failed (exit ${run.status}); see the message above`);
  }
  let result: unknown;
  try {
    result = JSON.parse(run.stdout);
  } catch {
    throw new HayateError('ERR_BACKEND', `benchmark '${name}' printed no valid JSON`);
  }
  return {
    name,
    date: started.toISOString(),
    command: ['build-cmake/hayate_bench', ...args].join(' '),
    commit: git(root, ['rev-parse', 'HEAD']),
    dirty: git(root, ['status', '--porcelain', '--untracked-files=no']) !== '',
    machine: machineInfo(),
    seconds: (Date.now() - started.getTime()) / 1000,
    result,
  };
}

/** Writes bench/results-style `<name>-<device>-<date>.json` into dir (atomically) and returns its path. */
export function writeBenchRecord(record: BenchRecord, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const device = record.machine.gpu !== 'none' && record.name.includes('cuda')
    ? record.machine.gpu.split('\n')[0].replace(/^NVIDIA\s+/i, '').replace(/[^A-Za-z0-9]+/g, '-').toLowerCase()
    : `${record.machine.cores}core`;
  const file = join(dir, `${record.name}-${device}-${record.date.slice(0, 10)}.json`);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n');
  renameSync(tmp, file);
  return file;
}
