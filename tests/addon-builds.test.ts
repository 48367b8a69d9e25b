// Both builds of the addon work: cmake-js (build-cmake/) and node-gyp (build/, built by CI with
// `npm run build:gyp`), so neither build description rots.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from './helpers.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const builds = [join(root, 'build-cmake', 'Release', 'hayate.node'), join(root, 'build', 'Release', 'hayate.node')];

afterAll(cleanupTempDirs);

describe('addon builds', () => {
  for (const addon of builds) {
    it.runIf(existsSync(addon))(`${addon.slice(root.length + 1)} loads a model and generates`, () => {
      const dir = tempDir();
      const env = { ...process.env, HAYATE_ADDON: addon };
      execFileSync(process.execPath, [cli, 'init-model', dir, '--shape', 'tiny'], { env, encoding: 'utf8' });
      const out = execFileSync(process.execPath, [cli, 'generate', dir, '{"a": 1', '-m', '6', '-t', '0', '--format', 'json'], { env, encoding: 'utf8' });
      expect(JSON.parse(out).completions[0].tokens).toHaveLength(6);
    });
  }
  it('the cmake-js build exists (npm ci builds it)', () => {
    expect(existsSync(builds[0])).toBe(true);
  });
});
