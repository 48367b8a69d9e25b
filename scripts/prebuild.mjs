#!/usr/bin/env node
// Builds the prebuilt addon the npm package carries (`npm run build:prebuild`; `npm pack` runs it as
// prepack): prebuildify + node-gyp + binding.gyp into prebuilds/linux-x64/, one N-API binary for every
// Node >= 20 on x86-64 glibc Linux. It is the portable build (HAYATE_CPU_DISPATCH=1): the engine for
// x86-64-v2, the hot kernels also for AVX2 + FMA and AVX-512, chosen when the addon loads
// (cpp/cpu/isa/kernels.h); no OpenBLAS (a user may not have it: the built-in GEMM serves every size);
// libstdc++ linked in. Then it checks that no kernel object file exports a weak symbol (which the linker
// could pick for the whole addon: see cpp/cpu/gemm_kernel.h) and that the addon loads.
// Elsewhere than linux-x64 it builds nothing: the package then builds from source when installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const log = (msg) => console.error(`hayate prebuild: ${msg}`);

if (process.platform !== 'linux' || process.arch !== 'x64') {
  log(`no prebuilt addon for ${process.platform}-${process.arch} (only linux-x64 is made); the package will build from source when installed`);
  process.exit(0);
}

rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
const env = { ...process.env, HAYATE_CPU_DISPATCH: '1', HAYATE_NO_BLAS: '1', JOBS: process.env.JOBS ?? '2' };
const r = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc'], { cwd: root, env, stdio: 'inherit' });
if (r.status !== 0) {
  log('prebuildify failed');
  process.exit(r.status ?? 1);
}

// The per-instruction-set objects must define no weak (COMDAT) symbols.
const objDir = join(root, 'build', 'Release', 'obj.target');
const objects = [];
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (/hayate_isa_/.test(p) && p.endsWith('.o')) objects.push(p);
  }
};
if (existsSync(objDir)) walk(objDir);
if (objects.length !== 4) {
  log(`expected the 4 kernel objects (avx512_bf16, avx512, avx2, generic) under ${objDir}, found ${objects.length}`);
  process.exit(1);
}
for (const o of objects) {
  const nm = spawnSync('nm', ['-C', '--defined-only', o], { encoding: 'utf8' });
  if (nm.error || nm.status !== 0) {
    log(`cannot run nm (${nm.error?.message ?? nm.stderr}); weak-symbol check skipped`);
    break;
  }
  // (DW.ref.__gxx_personality_v0 is a weak pointer to the C++ personality routine: data, the same everywhere)
  const weak = nm.stdout.split('\n').filter((l) => / [WVu] /.test(l) && !/ DW\.ref\./.test(l));
  if (weak.length) {
    log(`${o} defines weak symbols the linker could share with code for other CPUs:\n  ${weak.join('\n  ')}`);
    process.exit(1);
  }
}

const dir = join(root, 'prebuilds', 'linux-x64');
const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
if (files.length !== 1) {
  log(`expected one .node file in ${dir}, found: ${files.join(', ') || 'none'}`);
  process.exit(1);
}
const probe = spawnSync(process.execPath, ['-p', 'JSON.stringify(require(process.argv[1]).buildInfo())', join(dir, files[0])], { encoding: 'utf8' });
if (probe.status !== 0) {
  log(`the prebuilt addon does not load: ${probe.stderr}`);
  process.exit(1);
}
log(`prebuilds/linux-x64/${files[0]}: ${(statSync(join(dir, files[0])).size / 1e6).toFixed(1)} MB, buildInfo ${probe.stdout.trim()}`);
