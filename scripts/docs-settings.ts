// `npm run docs:settings`: rewrites README.md's table of `hayate train` settings (between its marker
// comments) from the settings definition, ts/cli/train-config.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceSettingsTable } from '../ts/cli/settings-doc.js';

const readmePath = join(import.meta.dirname, '..', 'README.md');
const before = readFileSync(readmePath, 'utf8');
const after = replaceSettingsTable(before);
if (after === before) {
  process.stdout.write('README.md settings table is up to date\n');
} else {
  writeFileSync(readmePath, after);
  process.stdout.write('README.md settings table rewritten\n');
}
