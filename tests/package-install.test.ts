// The npm package as a user gets it: `npm pack` (its prepack makes the prebuilt addon, scripts/prebuild.mjs),
// then `npm install hayate-*.tgz` in an empty project on a PATH with no CMake and no C++ compiler, then
// `npx hayate demo --quick` and the README's library example, taken from README.md as it stands.
// It builds the addon and installs the package's dependencies, so it takes minutes: it runs when
// HAYATE_TEST_PACKAGE=1 or in CI (CI=true), on linux-x64 (the only platform with a prebuild).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from './helpers.js';

const root = join(import.meta.dirname, '..');
const enabled = (process.env.HAYATE_TEST_PACKAGE === '1' || process.env.CI === 'true') && process.platform === 'linux' && process.arch === 'x64';
const MINUTE = 60_000;

// Not copied into the packing tree: installs, build outputs and checkouts' own state.
const SKIP_TOP = new Set(['node_modules', 'build', 'build-cmake', 'dist', 'prebuilds', '.git', '.tmp', '.node-carry', '.whl']);

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 10 * MINUTE, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) failed: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n--- stdout\n${r.stdout?.slice(-4000)}\n--- stderr\n${r.stderr?.slice(-4000)}`);
  }
  return r;
}

/** A bin directory holding node, npm, npx and a few basic tools, and nothing that compiles or configures. */
function bareBin(dir: string): string {
  mkdirSync(dir);
  const nodeDir = dirname(process.execPath);
  const link = (name: string, target: string) => symlinkSync(realpathSync(target), join(dir, name));
  link('node', process.execPath);
  for (const tool of ['npm', 'npx']) {
    const p = join(nodeDir, tool);
    if (!existsSync(p)) throw new Error(`${tool} is not next to node (${nodeDir})`);
    link(tool, p);
  }
  for (const tool of ['sh', 'bash', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'uname', 'grep', 'sed', 'tar', 'gzip']) {
    const p = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((q) => existsSync(q));
    if (p) link(tool, p);
  }
  return dir;
}

describe.runIf(enabled)('npm package: prebuilt addon, installed without a compiler', () => {
  let work: string;
  let tarball: string;
  let packedFiles: string[];
  let project: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    work = tempDir('hayate-package-');
    // Pack from a copy, so that prebuildify's node-gyp build does not replace this checkout's build/.
    const src = join(work, 'src');
    cpSync(root, src, {
      recursive: true,
      filter: (p) => {
        const rel = relative(root, p);
        return rel === '' || !SKIP_TOP.has(rel.split(sep)[0]);
      },
    });
    symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
    const t0 = Date.now();
    const packed = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: src, timeoutMs: 20 * MINUTE });
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
    tarball = join(work, info[0].filename);
    packedFiles = info[0].files.map((f) => f.path);
    console.log(`npm pack: ${info[0].filename}, ${(info[0].size / 1e6).toFixed(1)} MB packed, ${(info[0].unpackedSize / 1e6).toFixed(1)} MB unpacked, ${packedFiles.length} files, ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'hayate-install-check', private: true, type: 'module' }, null, 2));
    env = { ...process.env, PATH: bareBin(join(work, 'bin')) };
    delete env.HAYATE_ADDON;
    delete env.HAYATE_BUILD_FROM_SOURCE;
    delete env.HAYATE_CPU_KERNELS;
    for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k]; // not the outer npm test run's settings
  }, 25 * MINUTE);

  afterAll(cleanupTempDirs);

  it('the tarball carries the prebuilt addon, the install script and the sources, and no build directories', () => {
    expect(packedFiles).toEqual(expect.arrayContaining([
      'scripts/install.mjs', 'binding.gyp', 'CMakeLists.txt', 'cpp/cpu/isa/avx512.cpp', 'cpp/cpu/isa/avx512_bf16.cpp', 'cpp/cpu/gemm_kernel.h', 'cpp/cpu/gemm_bf16_kernel.h', 'dist/index.js', 'dist/cli/main.js',
    ]));
    expect(packedFiles.filter((f) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(f))).toHaveLength(1);
    expect(packedFiles.filter((f) => /^(build|build-cmake|node_modules|ts|tests)\//.test(f))).toEqual([]);
  });

  it('the PATH has no CMake and no C++ compiler', () => {
    for (const tool of ['cmake', 'c++', 'g++', 'gcc', 'cc', 'clang', 'clang++', 'make', 'ninja', 'nvcc']) {
      const r = spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env, encoding: 'utf8' });
      expect({ tool, found: r.stdout.trim() }).toEqual({ tool, found: '' });
    }
  });

  it('npm install uses the prebuild (nothing compiled), then `npx hayate demo --quick` and the README library example run', () => {
    let t = Date.now();
    const install = run('npm', ['install', tarball, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: project, env, timeoutMs: 15 * MINUTE });
    console.log(`npm install: ${((Date.now() - t) / 1000).toFixed(0)} s\n${(install.stdout + install.stderr).trim()}`);
    expect(install.stderr + install.stdout).toMatch(/hayate: using the prebuilt addon prebuilds\/linux-x64\//);
    const installed = join(project, 'node_modules', 'hayate');
    expect(existsSync(join(installed, 'build-cmake'))).toBe(false);
    expect(existsSync(join(installed, 'build'))).toBe(false);

    t = Date.now();
    const demo = run('npx', ['hayate', 'demo', '--quick', '--out', join(work, 'demo')], { cwd: project, env });
    console.log(`npx hayate demo --quick: ${((Date.now() - t) / 1000).toFixed(0)} s\n${demo.stdout.trim()}`);
    expect(demo.stdout).toMatch(/GRPO/);

    // The README's example, verbatim but for where the model is.
    const model = join(work, 'hayate-tiny');
    run('npx', ['hayate', 'init-model', model, '--shape', 'tiny'], { cwd: project, env });
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Library\n'));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toContain("from 'hayate'");
    expect(code).toContain('/tmp/hayate-tiny');
    writeFileSync(join(project, 'readme-example.mjs'), code!.replaceAll('/tmp/hayate-tiny', model));
    t = Date.now();
    const example = run(process.execPath, ['readme-example.mjs'], { cwd: project, env });
    console.log(`README library example: ${((Date.now() - t) / 1000).toFixed(0)} s`);
    // two prompts, n: 4: one "<finishReason> <text> <n logprobs>" line per completion
    expect(example.stdout.split('\n').filter((l) => /^(stop|length) [\s\S]* \d+$/.test(l))).toHaveLength(8);
  }, 30 * MINUTE);

  it('works with install scripts blocked (npm --ignore-scripts, or allowScripts not approving it): the loader finds the prebuild', () => {
    const blocked = join(work, 'project-no-scripts');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'package.json'), JSON.stringify({ name: 'hayate-install-check-no-scripts', private: true, type: 'module' }, null, 2));
    const install = run('npm', ['install', tarball, '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: blocked, env, timeoutMs: 15 * MINUTE });
    expect(install.stdout + install.stderr).not.toMatch(/using the prebuilt addon/); // the script did not run
    const out = run('npx', ['hayate', 'generate', join(work, 'hayate-tiny'), 'Tom has 3 apples', '-m', '6', '-t', '0', '--format', 'json'], { cwd: blocked, env });
    expect(JSON.parse(out.stdout).completions[0].tokens.length).toBeGreaterThan(0);
  }, 15 * MINUTE);

  it('the prebuilt addon picks the best kernels this CPU runs, and runs the lower ones when asked', () => {
    const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
    const best = ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd'].every((f) => flags.has(f)) ? 'AVX-512'
      : ['avx2', 'fma', 'bmi2'].every((f) => flags.has(f)) ? 'AVX2' : 'scalar';
    const script = `import { Model } from 'hayate';
const m = await Model.load(${JSON.stringify(join(work, 'hayate-tiny'))}, { gemm: 'builtin' });
const { results } = await m.generate(['Tom has 3 apples.'], { maxNewTokens: 8, temperature: 0 });
console.log(JSON.stringify({ description: m.info.backendDescription, tokens: results[0].completions[0].tokens.length }));
await m.dispose();`;
    writeFileSync(join(project, 'kernels.mjs'), script);
    const order = ['AVX-512', 'AVX2', 'scalar'];
    const ids: Record<string, string> = { 'AVX-512': 'avx512', AVX2: 'avx2', scalar: 'generic' };
    for (const isa of [undefined, ...order.slice(order.indexOf(best))]) {
      const r = run(process.execPath, ['kernels.mjs'], { cwd: project, env: { ...env, ...(isa ? { HAYATE_CPU_KERNELS: ids[isa] } : {}) } });
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { description: string; tokens: number };
      console.log(`HAYATE_CPU_KERNELS=${isa ? ids[isa] : '(unset)'}: ${out.description}`);
      expect(out.description).toContain(`builtin ${isa ?? best} `);
      expect(out.description).toContain('chosen at run time');
      // bf16 weights: dot products only with AVX512_BF16 and the best set, widened to f32 in every other
      const dot = isa === undefined && best === 'AVX-512' && flags.has('avx512_bf16');
      expect(out.description).toContain(dot ? 'bf16 weights: AVX512-BF16 dot products' : 'bf16 weights: widened to f32');
      expect(out.tokens).toBeGreaterThan(0);
    }
  });
});
