#!/usr/bin/env node
// npm's install script: use the prebuilt addon when one matches this machine, else build from source.
//
// - The package carries prebuilds/linux-x64/ (made by `npm run build:prebuild` when packing: a portable
//   CPU addon that picks AVX-512, AVX2 or generic kernels at run time). node-gyp-build finds the one for
//   this platform, architecture and libc; it is loaded once in a child process to be sure it runs here
//   (glibc, CPU). Then nothing is compiled, and this script ends.
// - Otherwise, or with HAYATE_BUILD_FROM_SOURCE=1, or in a git checkout (development and CI need
//   build-cmake/ for the native tests and benchmarks), it builds from source as before: cmake-js into
//   build-cmake/ (needs CMake and a C++17 compiler; the CUDA backend too when nvcc is found).
// The loader (ts/native.ts) prefers build-cmake/, so a source build always wins over the prebuild.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const log = (msg) => console.error(`hayate: ${msg}`);

function usablePrebuild() {
  let file;
  try {
    file = require('node-gyp-build').resolve(root);
  } catch {
    return { why: `no prebuilt addon for ${process.platform}-${process.arch}` };
  }
  // Load it where a failure (a missing glibc symbol, an instruction this CPU lacks) cannot take this process down.
  const probe = spawnSync(process.execPath, ['-e', 'const a = require(process.argv[1]); a.buildInfo();', file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (probe.status !== 0) {
    const lines = (probe.stderr || '').split('\n').map((l) => l.trim()).filter(Boolean);
    const detail = lines.find((l) => /Error/.test(l)) ?? lines.at(-1) ?? `exit ${probe.status ?? probe.signal}`;
    return { why: `the prebuilt addon ${relative(root, file)} does not load here (${detail})` };
  }
  return { file };
}

function findNvcc() {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), process.env.CUDA_PATH && join(process.env.CUDA_PATH, 'bin'), '/usr/local/cuda/bin'];
  return dirs.filter(Boolean).map((d) => join(d, 'nvcc')).find((p) => existsSync(p));
}

function buildFromSource() {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-cmake'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    log('the source build failed; it needs CMake >= 3.18 and a C++17 compiler (see README, "Building")');
    process.exit(r.status ?? 1);
  }
}

const forced = ['1', 'true', 'yes'].includes((process.env.HAYATE_BUILD_FROM_SOURCE ?? '').toLowerCase());
if (forced) {
  log('HAYATE_BUILD_FROM_SOURCE is set: building the addon from source');
  buildFromSource();
} else if (existsSync(join(root, '.git'))) {
  buildFromSource();  // a checkout: build as before, quietly
} else {
  const found = usablePrebuild();
  if (found.file) {
    log(`using the prebuilt addon ${relative(root, found.file)} (set HAYATE_BUILD_FROM_SOURCE=1 to compile instead)`);
    const nvcc = findNvcc();
    if (nvcc) log(`note: the prebuilt addon is CPU-only; for the CUDA backend (${nvcc} is here) reinstall with HAYATE_BUILD_FROM_SOURCE=1`);
  } else {
    log(`${found.why}: building from source`);
    buildFromSource();
  }
}
