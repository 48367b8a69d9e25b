// Build facts for binding.gyp (node-gyp cannot glob or probe by itself): `node gyp-config.cjs <what>`
// prints a whitespace-separated list. <what>: sources | defines | includes | libraries.
// Mirrors CMakeLists.txt: same engine sources (no CUDA), OpenBLAS when its header and library exist.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const list = (dir) =>
  fs.existsSync(path.join(root, dir))
    ? fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.cpp')).sort().map((f) => `${dir}/${f}`)
    : [];

const blasIncludes = ['/usr/include/x86_64-linux-gnu/openblas-pthread', '/usr/include/aarch64-linux-gnu/openblas-pthread', '/usr/include/openblas'];
const blasLibs = ['/usr/lib/x86_64-linux-gnu/openblas-pthread', '/usr/lib/aarch64-linux-gnu/openblas-pthread', '/usr/lib/x86_64-linux-gnu', '/usr/lib'];
const blasInclude = process.env.HAYATE_NO_BLAS ? undefined : blasIncludes.find((d) => fs.existsSync(path.join(d, 'cblas.h')));
const blasLib = blasLibs.find((d) => fs.existsSync(path.join(d, 'libopenblas.so')));
const blas = blasInclude && blasLib;

const what = process.argv[2];
const out = {
  sources: [...list('cpp'), ...list('cpp/cpu'), ...list('cpp/addon')],
  defines: blas ? ['HAYATE_WITH_BLAS=1'] : [],
  includes: blas ? [blasInclude] : [],
  libraries: blas ? [`-L${blasLib}`, '-lopenblas', `-Wl,-rpath,${blasLib}`] : [],
}[what];
if (!out) {
  console.error(`gyp-config.cjs: unknown query '${what}'`);
  process.exit(1);
}
console.log(out.join(' '));
