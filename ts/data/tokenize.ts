// Tokenization of many texts in a piscina worker pool, so encoding a dataset does not block the event loop
// (and uses every core). Results are in input order.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { HayateError } from '../errors.js';
import type { TokenizeTask } from './tokenize-worker.js';
import { workerModule } from '../workers.js';

export interface TokenizeOptions {
  /** Add the tokenizer's special tokens (BOS...) as transformers does; false for chat-template output. Default true. */
  addSpecialTokens?: boolean;
  /** Worker threads (default: min(4, available cores)). */
  threads?: number;
  /** Texts per task (default 256). */
  chunkSize?: number;
}

/** A pool of tokenizer threads for one tokenizer directory; close() it when done. */
export class TokenizerPool {
  readonly dir: string;
  private readonly pool: Piscina<TokenizeTask, Int32Array[]>;
  private readonly chunkSize: number;

  constructor(dir: string, options: Pick<TokenizeOptions, 'threads' | 'chunkSize'> = {}) {
    const threads = options.threads ?? Math.min(4, availableParallelism());
    if (!Number.isInteger(threads) || threads < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `threads must be a positive integer, got ${threads}`);
    const chunkSize = options.chunkSize ?? 256;
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `chunkSize must be a positive integer, got ${chunkSize}`);
    if (!existsSync(join(dir, 'tokenizer.json'))) throw new HayateError('ERR_NOT_FOUND', `tokenizer.json not found in ${dir}`);
    const worker = workerModule(import.meta.url, 'tokenize-worker');
    this.dir = dir;
    this.chunkSize = chunkSize;
    this.pool = new Piscina({ filename: worker.filename, execArgv: worker.execArgv, minThreads: 1, maxThreads: threads, idleTimeout: 5_000 });
  }

  /** Token ids of every text, in order. */
  async encode(texts: readonly string[], options: Pick<TokenizeOptions, 'addSpecialTokens'> = {}): Promise<Int32Array[]> {
    const addSpecialTokens = options.addSpecialTokens ?? true;
    const chunks: Promise<Int32Array[]>[] = [];
    for (let i = 0; i < texts.length; i += this.chunkSize) {
      chunks.push(this.pool.run({ dir: this.dir, texts: texts.slice(i, i + this.chunkSize), addSpecialTokens }));
    }
    try {
      return (await Promise.all(chunks)).flat();
    } catch (err) {
      if (err instanceof HayateError) throw err;
      // Errors cross the thread boundary as plain Errors; keep the tokenizer's code when it has one.
      const code = (err as { code?: unknown }).code;
      throw new HayateError(code === 'ERR_NOT_FOUND' ? 'ERR_NOT_FOUND' : 'ERR_TOKENIZER', `tokenizing with ${this.dir} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Token ids of every text with the tokenizer in `tokenizerDir`, computed in a worker pool. */
export async function tokenizeAll(tokenizerDir: string, texts: readonly string[], options: TokenizeOptions = {}): Promise<Int32Array[]> {
  if (texts.length === 0) return [];
  const pool = new TokenizerPool(tokenizerDir, { threads: Math.min(options.threads ?? Math.min(4, availableParallelism()), Math.ceil(texts.length / (options.chunkSize ?? 256))), chunkSize: options.chunkSize });
  try {
    return await pool.encode(texts, options);
  } finally {
    await pool.close();
  }
}
