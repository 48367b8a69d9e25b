// Model: the library's entry point for inference. Loads a Hugging Face model directory into the native
// engine (weights, off the JS thread) together with its tokenizer, and runs batched generation and
// log-prob scoring as cancellable Promises. Calls on one model run one at a time, in call order.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AbortError, HayateError, fromNative } from './errors.js';
import { native, type NativeGenerationStats, type NativeModelHandle, type NativeModelInfo, type NativeProgress } from './native.js';
import { HfTokenizer, type ChatMessage } from './tokenizer.js';

export type BackendKind = 'cpu' | 'cuda';

export interface ModelLoadOptions {
  /** Compute backend; 'cpu' (default) runs everywhere, 'cuda' needs a build with CUDA and a GPU. */
  backend?: BackendKind;
  /** CPU threads (default: one per hardware thread). */
  threads?: number;
  /** CPU GEMM: 'auto' (BLAS when built with one), 'blas', or 'builtin' (batch-invariant). */
  gemm?: 'auto' | 'blas' | 'builtin';
  /** CUDA device ordinal. */
  device?: number;
  signal?: AbortSignal;
}

/** A prompt: plain text (encoded as is), chat messages (rendered with the model's chat template) or token ids. */
export type PromptInput = string | { text: string } | { messages: ChatMessage[] } | { tokens: number[] | Int32Array };

export interface SamplingOptions {
  /** Samples per prompt (default 1). */
  n?: number;
  maxNewTokens?: number;
  /** 0 = greedy. Default 1. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Base seed; prompt i, sample j uses a seed derived from (seed + i, j). Default 0. */
  seed?: number;
  /** Stop strings: generation of a sequence ends when its text contains one; it is cut from the text. */
  stop?: string[];
  /** Extra stop token ids (the model's EOS ids are always included unless ignoreEos). */
  stopTokenIds?: number[];
  ignoreEos?: boolean;
}

export interface GenerateOptions extends SamplingOptions {
  /** Sequences decoded at once (default 64). */
  maxBatch?: number;
  /** Prompt tokens prefilled per step (default 512). */
  prefillChunk?: number;
  /** KV cache capacity in tokens (default: enough for all requests, capped at 8 GiB). */
  kvCacheTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: NativeProgress) => void;
}

export interface Completion {
  text: string;
  tokens: number[];
  /** Log-prob of each generated token under log_softmax(logits / temperature) (raw logits when greedy). */
  logprobs: number[];
  finishReason: 'stop' | 'length';
  /** The stop string that ended the sequence, if any. */
  stopString?: string;
}

export interface PromptResult {
  promptTokens: number[];
  completions: Completion[];
}

export interface GenerateResult {
  results: PromptResult[];
  stats: NativeGenerationStats;
}

export type ScoredSequence = { tokens: number[] | Int32Array } | { text: string };

export class Model {
  readonly dir: string;
  readonly info: NativeModelInfo;
  /** Undefined when the directory has no tokenizer.json (token-id prompts only). */
  readonly tokenizer: HfTokenizer | undefined;
  private handle: NativeModelHandle | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private tokenBytesSent = false;

  private constructor(dir: string, handle: NativeModelHandle, tokenizer: HfTokenizer | undefined) {
    this.dir = dir;
    this.handle = handle;
    this.info = handle.info();
    this.tokenizer = tokenizer;
  }

  /** Loads a Hugging Face model directory (config.json, safetensors, tokenizer files). */
  static async load(dir: string, options: ModelLoadOptions = {}): Promise<Model> {
    options.signal?.throwIfAborted?.();
    if (!existsSync(dir)) throw new HayateError('ERR_NOT_FOUND', `model directory not found: ${dir}`);
    let handle: NativeModelHandle;
    try {
      handle = await native().loadModel(dir, {
        backend: options.backend ?? 'cpu',
        threads: options.threads ?? 0,
        gemm: options.gemm ?? 'auto',
        device: options.device ?? 0,
      });
    } catch (err) {
      throw fromNative(err);
    }
    // The engine validates config.json and the weights first, so their errors name the real cause.
    let tokenizer: HfTokenizer | undefined;
    try {
      tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await HfTokenizer.load(dir) : undefined;
    } catch (err) {
      handle.dispose();
      throw err;
    }
    if (options.signal?.aborted) {
      handle.dispose();
      throw new AbortError();
    }
    return new Model(dir, handle, tokenizer);
  }

  /** Ids that end generation by default: config/generation_config eos ids plus the tokenizer's. */
  get eosTokenIds(): number[] {
    const ids = new Set<number>(Array.from(this.info.eosTokenIds));
    for (const id of this.tokenizer?.eosTokenIds ?? []) ids.add(id);
    return [...ids];
  }

  /** Token ids of a prompt. */
  encodePrompt(p: PromptInput): number[] {
    if (typeof p === 'object' && 'tokens' in p) return Array.from(p.tokens);
    const tok = this.requireTokenizer();
    if (typeof p === 'string') return tok.encode(p);
    if ('messages' in p) return tok.encode(tok.applyChatTemplate(p.messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
    return tok.encode(p.text);
  }

  /** Generates completions for one prompt or many (batched with continuous batching in the engine). */
  async generate(prompts: PromptInput | PromptInput[], options: GenerateOptions = {}): Promise<GenerateResult> {
    const list = Array.isArray(prompts) ? prompts : [prompts];
    const encoded = list.map((p) => this.encodePrompt(p));
    const stops = options.stop ?? [];
    const stopTokenIds = [...(options.ignoreEos ? [] : this.eosTokenIds), ...(options.stopTokenIds ?? [])];
    const requests = encoded.map((tokens, i) => ({
      prompt: Int32Array.from(tokens),
      n: options.n ?? 1,
      maxNewTokens: options.maxNewTokens ?? 256,
      seed: (options.seed ?? 0) + i,
      temperature: options.temperature ?? 1.0,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1.0,
      minP: options.minP ?? 0.0,
      stopTokenIds: Int32Array.from(stopTokenIds),
      stopStrings: stops,
    }));
    return this.run(options.signal, async (handle, cancel) => {
      if (stops.length > 0 && !this.tokenBytesSent) {
        // The embedding may have more rows than the tokenizer has ids (Qwen3 pads 151669 to 151936):
        // those ids decode to nothing.
        const bytes = this.requireTokenizer().tokenBytes();
        while (bytes.length < this.info.vocabSize) bytes.push(new Uint8Array(0));
        handle.setTokenBytes(bytes);
        this.tokenBytesSent = true;
      }
      const { outputs, stats } = await handle.generate(
        requests,
        { maxBatch: options.maxBatch, prefillChunk: options.prefillChunk, kvCacheTokens: options.kvCacheTokens },
        options.onProgress,
        cancel,
      );
      const results: PromptResult[] = encoded.map((promptTokens) => ({ promptTokens, completions: [] }));
      for (const o of outputs) results[o.request].completions.push(this.toCompletion(o.tokens, o.logprobs, o.finishReason, o.stopString >= 0 ? stops[o.stopString] : undefined));
      return { results, stats };
    });
  }

  /**
   * For each sequence, the log-prob of token t+1 given tokens 0..t, for every position (length L-1),
   * under log_softmax(logits / temperature).
   */
  async logprobs(sequences: ScoredSequence[], options: { temperature?: number; signal?: AbortSignal } = {}): Promise<{ logprobs: number[] }[]> {
    const seqs = sequences.map((s) => Int32Array.from('tokens' in s ? Array.from(s.tokens) : this.requireTokenizer().encode(s.text)));
    return this.run(options.signal, async (handle) => {
      const out = await handle.logprobs(seqs, { temperature: options.temperature ?? 1.0 });
      return out.map((lp) => ({ logprobs: Array.from(lp) }));
    });
  }

  /** Full next-token logits [tokens.length][vocab] of one sequence (debugging and reference checks). */
  async logits(tokens: number[] | Int32Array, options: { signal?: AbortSignal } = {}): Promise<Float32Array[]> {
    const ids = Int32Array.from(tokens);
    return this.run(options.signal, async (handle) => {
      const flat = await handle.logits(ids);
      const V = this.info.vocabSize;
      const rows: Float32Array[] = [];
      for (let t = 0; t < ids.length; t++) rows.push(flat.subarray(t * V, (t + 1) * V));
      return rows;
    });
  }

  /** Releases the engine's memory once queued calls have finished. */
  async dispose(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await this.queue.catch(() => undefined);
    handle?.dispose();
  }

  private toCompletion(tokens: Int32Array, logprobs: Float32Array, finishReason: 'stop' | 'length', stopString: string | undefined): Completion {
    let text = this.tokenizer ? this.tokenizer.decode(Array.from(tokens), { skipSpecialTokens: true }) : '';
    if (stopString !== undefined) {
      const at = text.indexOf(stopString);
      if (at >= 0) text = text.slice(0, at);
    }
    const c: Completion = { text, tokens: Array.from(tokens), logprobs: Array.from(logprobs), finishReason };
    if (stopString !== undefined) c.stopString = stopString;
    return c;
  }

  private requireTokenizer(): HfTokenizer {
    if (!this.tokenizer) throw new HayateError('ERR_TOKENIZER', `${this.dir} has no tokenizer.json: pass token ids ({ tokens: [...] }) instead of text`);
    return this.tokenizer;
  }

  /** Runs native work after every earlier call, with AbortSignal -> native cancel and typed errors. */
  private run<T>(signal: AbortSignal | undefined, work: (handle: NativeModelHandle, cancel: InstanceType<ReturnType<typeof native>['CancelToken']>) => Promise<T>): Promise<T> {
    const next = this.queue.catch(() => undefined).then(async () => {
      const handle = this.handle;
      if (!handle) throw new HayateError('ERR_DISPOSED', 'model has been disposed');
      if (signal?.aborted) throw new AbortError();
      const cancel = new (native().CancelToken)();
      const onAbort = () => cancel.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await work(handle, cancel);
      } catch (err) {
        throw fromNative(err);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
    this.queue = next;
    return next;
  }
}
