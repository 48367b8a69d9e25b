// bench/gpu/validate.sh --dry-run: the GPU validation script configures and builds with nvcc (no GPU needed),
// enumerates the op-check families and lists every GPU step instead of running it, so the script cannot rot
// between the rare runs on a lent GPU. Its own build directory (one CUDA architecture, only the two
// executables the script runs). Skipped, saying why, where no nvcc or CMake is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from './helpers.js';

const root = join(import.meta.dirname, '..');
afterAll(cleanupTempDirs);

/** nvcc where validate.sh looks for it: $CUDACXX, PATH, /usr/local/cuda/bin, /usr/local/cuda-*\/bin. */
function findNvcc(): string | undefined {
  const env = process.env.CUDACXX;
  if (env && existsSync(env)) return env;
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  if (existsSync('/usr/local/cuda/bin/nvcc')) return '/usr/local/cuda/bin/nvcc';
  const versions = existsSync('/usr/local') ? readdirSync('/usr/local').filter((d) => d.startsWith('cuda-')).sort().reverse() : [];
  return versions.map((d) => `/usr/local/${d}/bin/nvcc`).find((p) => existsSync(p));
}

const nvcc = findNvcc();
const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' }).status === 0;
const skipReason = !nvcc ? 'no nvcc (not $CUDACXX, not on PATH, not in /usr/local/cuda*/bin)' : !cmake ? 'no cmake' : '';

describe('bench/gpu/validate.sh --dry-run', () => {
  it.skipIf(skipReason !== '')(
    `builds with nvcc and lists every GPU step${skipReason ? ` (skipped: ${skipReason})` : ''}`,
    () => {
      const out = tempDir('hayate-gpu-dry-run-');
      // this checkout's own build directory (git-ignored): a rerun is incremental, and another checkout's
      // CMake cache (another source directory) is never picked up
      const build = process.env.HAYATE_DRY_RUN_BUILD_DIR ?? join(root, 'build-gpu-dry-run');
      const r = spawnSync('bash', [join(root, 'bench/gpu/validate.sh'), '--dry-run', out], {
        cwd: root,
        encoding: 'utf8',
        env: {
          ...process.env,
          BUILD_DIR: build,
          BUILD_JOBS: String(Math.max(1, availableParallelism())),
          HAYATE_CUDA_ARCHS: process.env.HAYATE_CUDA_ARCHS ?? '90a',
        },
      });
      const steps = readFileSync(join(out, 'steps.tsv'), 'utf8');
      const tail = (f: string) => (existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8').slice(-4000) : `(no ${f})`);
      expect(r.status, `${r.stderr}\n${steps}\n${tail('configure.err')}\n${tail('build.err')}`).toBe(0);
      const rows = steps.trim().split('\n').slice(1).map((l) => l.split('\t'));
      const byName = new Map(rows.map((x) => [x[0], x]));
      // the build ran for real
      expect(byName.get('configure')?.[2]).toBe('0');
      expect(byName.get('build')?.[2]).toBe('0');
      expect(existsSync(join(build, 'hayate_native_tests'))).toBe(true);
      expect(existsSync(join(build, 'hayate_bench'))).toBe(true);
      // every GPU step was listed with its command and skipped
      const gpuSteps = rows.filter((x) => x[2] === 'dry-run');
      const names = gpuSteps.map((x) => x[0]);
      expect(names).toEqual(expect.arrayContaining(['train', 'kernels', 'native_tests']));
      expect(names.some((n) => n.startsWith('op_check-'))).toBe(true);
      expect(byName.get('train')?.[4]).toContain('train --shape qwen3-0.6b --backend cuda');
      expect(byName.get('kernels')?.[4]).toContain('kernels --backend cuda');
      for (const n of names.filter((x) => x.startsWith('op_check-'))) expect(byName.get(n)?.[4]).toMatch(/hayate_native_tests (cuda_op\/[^/\s]+\/|cuda)$/);
      expect(r.stderr).toMatch(/dry run: would run train/);
      // the op-check families come from the test binary's --list
      const families = names.filter((x) => x.startsWith('op_check-')).map((x) => x.slice('op_check-'.length));
      const listed = readFileSync(join(out, 'op_check_list.txt'), 'utf8').trim();
      if (listed) for (const f of families) expect(listed).toContain(`cuda_op/${f}/`);
      else expect(families).toEqual(['cuda']);
      // the summary was written, and says it is a dry run
      const summary = readFileSync(join(out, 'summary.md'), 'utf8');
      expect(summary).toMatch(/^# GPU validation: none \(dry run\)/);
      expect(summary).toContain('**Dry run**');
      expect(summary).toContain('## Op checks');
    },
    2_700_000,
  );
});
