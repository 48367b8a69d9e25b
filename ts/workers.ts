// Locating worker-thread modules for piscina pools (data/tokenize.ts and rewards/pool.ts use it). A worker
// module sits next to the module that starts the pool: compiled, it is a .js file under dist/; run from
// sources (tests, tsx), it is a .ts file, and the worker threads then load it through tsx's loader (a dev
// dependency), which must be installed.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HayateError } from './errors.js';

export interface WorkerModule {
  /** Absolute path of the worker module. */
  filename: string;
  /** execArgv for the worker threads (a TypeScript loader when the module is a .ts file). */
  execArgv: string[];
}

let tsLoader: string | null | undefined;

/** The file URL of tsx's loader, or null when tsx is not installed. */
export function typeScriptLoader(): string | null {
  if (tsLoader === undefined) {
    try {
      tsLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    } catch {
      tsLoader = null;
    }
  }
  return tsLoader;
}

/** execArgv that lets worker threads import `files` (adds tsx's loader when one of them is TypeScript). */
export function execArgvFor(files: readonly string[]): string[] {
  if (!files.some((f) => /\.[mc]?ts$/.test(f))) return [];
  const loader = typeScriptLoader();
  if (!loader) throw new HayateError('ERR_INVALID_ARGUMENT', `cannot load TypeScript modules in worker threads without tsx (${files.find((f) => /\.[mc]?ts$/.test(f))}): compile them to JavaScript first`);
  return ['--import', loader];
}

/** The worker module `name` (without extension) next to the module whose import.meta.url is `baseUrl`. */
export function workerModule(baseUrl: string, name: string): WorkerModule {
  for (const ext of ['.js', '.ts']) {
    const filename = fileURLToPath(new URL(`./${name}${ext}`, baseUrl));
    if (existsSync(filename)) return { filename, execArgv: execArgvFor([filename]) };
  }
  throw new HayateError('ERR_INTERNAL', `worker module ${name} not found next to ${fileURLToPath(baseUrl)}`);
}
