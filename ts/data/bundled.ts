// Data sets shipped inside the package (data/ at the package root), addressed by name wherever a dataset
// path is accepted: `gsm8k` (= `gsm8k:train`, 7,473 problems) and `gsm8k:test` (1,319 problems). GSM8K is
// OpenAI's grade-school math set, MIT-licensed (data/gsm8k/LICENSE). A path to a file of the same format
// works everywhere a name does; to load a file literally named `gsm8k`, write `./gsm8k`.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundled data sets: name → file under the package's data/ directory. */
export const BUNDLED_DATASETS: Readonly<Record<string, string>> = {
  gsm8k: 'gsm8k/train.jsonl',
  'gsm8k:train': 'gsm8k/train.jsonl',
  'gsm8k:test': 'gsm8k/test.jsonl',
};

/** The package's data/ directory (this file is ts/data/ or dist/data/, two levels below the root). */
export function bundledDataDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'data');
}

/** The file a bundled name stands for, or undefined when `spec` is not one (then it is a path). */
export function bundledDatasetPath(spec: string): string | undefined {
  const file = BUNDLED_DATASETS[spec];
  return file === undefined ? undefined : join(bundledDataDir(), file);
}

/** A dataset argument as a file path: bundled names resolved, anything else returned as given. */
export function resolveDatasetPath(spec: string): string {
  return bundledDatasetPath(spec) ?? spec;
}
