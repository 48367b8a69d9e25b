// Model: the library's entry point for inference. Loads a Hugging Face model directory into the native
// engine (weights, off the JS thread) together with its tokenizer, and runs batched generation and
// log-prob scoring as cancellable Promises. Calls on one model run one at a time, in call order.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AbortError, HayateError, fromNative } from './errors.js';
import {
  native,
  type NativeCancelToken,
  type NativeGenerationStats,
  type NativeLoraInfo,
  type NativeLoraModule,
  type NativeLoraTarget,
  type NativeLoraTensors,
  type NativeModelHandle,
  type NativeModelInfo,
  type NativeProgress,
  type NativeOutput,
  type NativeTurnEvent,
} from './native.js';
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
  /** CPU only: 'f64' runs every tensor in double precision (gradient checks); default 'f32'. */
  precision?: 'f32' | 'f64';
  /**
   * CPU, precision 'f32': the dtype of the frozen weight matrices. 'auto' (default) keeps a bf16 checkpoint
   * in bf16 (half the memory; with AVX512_BF16 the products run as bf16 dot products, activations rounded to
   * bf16) and an f32 one in f32; 'bf16' or 'f32' force one. LoRA weights, gradients and the optimizer stay f32.
   */
  weights?: 'auto' | 'bf16' | 'f32';
  signal?: AbortSignal;
}

/** The projections LoRA can adapt (Hugging Face / PEFT module names). */
export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = NativeLoraTarget;

export interface LoraOptions {
  /** Rank r (>= 1). */
  rank: number;
  /** Scale numerator: scale = alpha / r (alpha / sqrt(r) with rslora). */
  alpha: number;
  /** Projections to adapt (default: all seven). */
  targets?: readonly LoraTarget[];
  /** Layers to adapt (default: all). */
  layers?: readonly number[];
  /** Explicit (layer, target) list; overrides targets and layers. */
  modules?: readonly NativeLoraModule[];
  rslora?: boolean;
  /** Seed of A's initialisation (PEFT: kaiming-uniform A, zero B). */
  seed?: number;
}

export type LoraInfo = NativeLoraInfo;
export type LoraTensors = NativeLoraTensors;

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
  /** Use the attached LoRA adapters (default true); false samples from the base model. */
  lora?: boolean;
  /**
   * Multi-turn generation (tool calls) in one engine call: when a sequence stops (a `stop` string or a stop
   * token, EOS included) it is parked with its KV cache and onTurn is called. Resolve to the tokens to append
   * (e.g. the chat template's tool message plus the next assistant header, already tokenized): only they are
   * prefilled, then the model continues the same sequence (turn + 1). Resolve to null/undefined to end the
   * sequence (finishReason 'stop'). Other sequences keep decoding meanwhile. `maxNewTokens` bounds the whole
   * completion, generated + appended tokens: an answer longer than `turn.maxAppendTokens` is cut to
   * `turn.remainingTokens` and ends the sequence ('length'); a sequence that reaches maxNewTokens ends
   * ('length') without a call. A callback that throws or rejects ends its sequence, with the message in
   * `Completion.error`. An invalid answer (not an array of integer token ids in the vocabulary) rejects the
   * whole generate call with ERR_INVALID_ARGUMENT. Every call must settle: a promise that never does keeps the
   * generation waiting until `signal` aborts it. Do not call this model (generate, logprobs, ...) from onTurn
   * and await it: calls on one model run one at a time, so it would wait for this generate forever.
   */
  onTurn?: (turn: Turn) => TurnAnswer | Promise<TurnAnswer>;
  /** With onTurn: model turns per sequence (default: no limit); the stop ending the last one ends the sequence without a call. */
  maxTurns?: number;
}

/** Tokens to append after a turn (TurnAnswer), or null/undefined to end the sequence. */
export type TurnAnswer = readonly number[] | Int32Array | null | undefined;

/** A model turn that ended at a stop, in a generate call with onTurn. */
export interface Turn {
  /** Prompt index. */
  request: number;
  /** Sample index of that prompt (0..n-1). */
  sample: number;
  /** 0-based index of the model turn that ended. */
  turn: number;
  /** The tokens the model sampled in this turn; the last one completed the stop (stop token or end of the stop string). */
  tokens: number[];
  /** `tokens` decoded (special tokens skipped, the stop string kept); '' without a tokenizer. */
  text: string;
  logprobs: number[];
  /** The stop string that ended the turn; undefined when a stop token did (then it is tokens.at(-1)). */
  stopString?: string;
  /** Completion length so far: generated + appended tokens. */
  completionTokens: number;
  /** maxNewTokens - completionTokens (>= 1). */
  remainingTokens: number;
  /** The most tokens an answer may append with the model still generating after them (budget and context). */
  maxAppendTokens: number;
}

export interface Completion {
  /** The tokens decoded; the stop string that ended the sequence is cut, except with onTurn, where every turn's stop stays. */
  text: string;
  tokens: number[];
  /** Log-prob of each generated token under log_softmax(logits / temperature) (raw logits when greedy). */
  logprobs: number[];
  finishReason: 'stop' | 'length';
  /** The stop string that ended the sequence, if any. */
  stopString?: string;
  /** With onTurn: per token of `tokens`, 1 = sampled by the model, 0 = appended by an onTurn answer (logprob 0). */
  modelTokenMask?: number[];
  /** With onTurn: model turns (1 + the answers that continued the sequence; an answer cut by the budget does not). */
  turns?: number;
  /** With onTurn: the error message of an onTurn call that threw or rejected, which ended this sequence. */
  error?: string;
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
  /** The attached adapters' info, refreshed inside the call queue (reading it natively takes the engine lock). */
  private loraCache: LoraInfo | null;

  private constructor(dir: string, handle: NativeModelHandle, tokenizer: HfTokenizer | undefined) {
    this.dir = dir;
    this.handle = handle;
    this.info = handle.info();
    this.tokenizer = tokenizer;
    this.loraCache = handle.loraInfo();
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
        precision: options.precision ?? 'f32',
        weights: options.weights ?? 'auto',
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

  /**
   * A generation context on this model's base: the same frozen weights, shared rather than copied (no
   * second copy in memory), with its own LoRA adapters (none until attachLora or setLoraTensors), its own
   * KV caches and its own call queue and engine lock, so its calls run at the same time as this model's
   * (GrpoTrainer generates the next batch on one while the other trains). CPU: its own thread pool of
   * `threads` threads (default: as many as this model's); CUDA: the same device, its own stream. Dispose
   * both when done, in either order: the weights stay until the last of them is disposed.
   */
  async shareBase(options: { threads?: number; signal?: AbortSignal } = {}): Promise<Model> {
    const threads = options.threads;
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 0 || threads > 4096)) {
      throw new HayateError('ERR_INVALID_ARGUMENT', `shareBase: threads must be an integer in [0, 4096] (0: one per hardware thread), got ${String(threads)}`);
    }
    const handle = await this.run(options.signal, (h) => native().shareModel(h, threads === undefined ? {} : { threads }));
    if (options.signal?.aborted) {
      handle.dispose();
      throw new AbortError();
    }
    return new Model(this.dir, handle, this.tokenizer);
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
      ...(options.onTurn ? { interactive: true, maxTurns: options.maxTurns ?? 0 } : {}),
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
      const turns = options.onTurn ? this.turnHandler(options.onTurn, stops, cancel) : undefined;
      let generated: Awaited<ReturnType<typeof handle.generate>>;
      try {
        generated = await handle.generate(
          requests,
          { maxBatch: options.maxBatch, prefillChunk: options.prefillChunk, kvCacheTokens: options.kvCacheTokens, lora: options.lora ?? true },
          options.onProgress,
          cancel,
          turns?.onTurn,
        );
      } catch (err) {
        throw turns?.settle() ?? err;
      }
      turns?.settle();
      const { outputs, stats } = generated;
      const results: PromptResult[] = encoded.map((promptTokens) => ({ promptTokens, completions: [] }));
      for (const o of outputs) results[o.request].completions.push(o.tokenMask && turns ? this.toTurnCompletion(o, stops, turns.errors) : this.toCompletion(o.tokens, o.logprobs, o.finishReason, o.stopString >= 0 ? stops[o.stopString] : undefined));
      return { results, stats };
    });
  }

  /**
   * For each sequence, the log-prob of token t+1 given tokens 0..t, for every position (length L-1),
   * under log_softmax(logits / temperature).
   */
  async logprobs(sequences: ScoredSequence[], options: { temperature?: number; lora?: boolean; signal?: AbortSignal } = {}): Promise<{ logprobs: number[] }[]> {
    const seqs = sequences.map((s) => Int32Array.from('tokens' in s ? Array.from(s.tokens) : this.requireTokenizer().encode(s.text)));
    return this.run(options.signal, async (handle) => {
      const out = await handle.logprobs(seqs, { temperature: options.temperature ?? 1.0, lora: options.lora ?? true });
      return out.map((lp) => ({ logprobs: Array.from(lp) }));
    });
  }

  /** Full next-token logits [tokens.length][vocab] of one sequence (debugging and reference checks). */
  async logits(tokens: number[] | Int32Array, options: { lora?: boolean; signal?: AbortSignal } = {}): Promise<Float32Array[]> {
    const ids = Int32Array.from(tokens);
    return this.run(options.signal, async (handle) => {
      const flat = await handle.logits(ids, { lora: options.lora ?? true });
      const V = this.info.vocabSize;
      const rows: Float32Array[] = [];
      for (let t = 0; t < ids.length; t++) rows.push(flat.subarray(t * V, (t + 1) * V));
      return rows;
    });
  }

  // ---- LoRA adapters ----------------------------------------------------------------------------

  /**
   * Attaches fresh LoRA adapters (replacing any): A initialised as PEFT does (seeded), B zero, so the
   * model's outputs are unchanged until they are trained or loaded (see adapter.ts).
   */
  async attachLora(options: LoraOptions): Promise<void> {
    const modules = this.loraModules(options);
    await this.run(undefined, async (handle) => {
      try {
        await handle.attachLora({ rank: options.rank, alpha: options.alpha, rslora: options.rslora ?? false, seed: options.seed ?? 0, modules });
      } finally {
        this.loraCache = handle.loraInfo();  // no job runs now: the queue serialises this model's calls
      }
    });
  }

  async detachLora(): Promise<void> {
    await this.run(undefined, async (handle) => {
      await handle.detachLora();
      this.loraCache = null;
    });
  }

  /** The attached adapters' configuration, or null. */
  get lora(): LoraInfo | null {
    if (!this.handle) throw new HayateError('ERR_DISPOSED', 'model has been disposed');
    return this.loraCache;
  }

  /** A and B of every attached adapter (f32 copies). */
  async loraTensors(): Promise<LoraTensors[]> {
    return this.run(undefined, (handle) => handle.getLoraTensors());
  }

  /** Overwrites A and B of the listed adapters (each must exist, with matching sizes). */
  async setLoraTensors(tensors: LoraTensors[]): Promise<void> {
    await this.run(undefined, (handle) => handle.setLoraTensors(tensors));
  }

  /** Resolves options into the (layer, target) list, validating names and layer numbers. */
  loraModules(options: Pick<LoraOptions, 'targets' | 'layers' | 'modules'>): NativeLoraModule[] {
    if (options.modules) return options.modules.map((m) => ({ layer: m.layer, target: m.target }));
    const targets = options.targets ?? LORA_TARGETS;
    for (const t of targets) {
      if (!(LORA_TARGETS as readonly string[]).includes(t)) {
        throw new HayateError('ERR_INVALID_ARGUMENT', `unknown LoRA target module '${String(t)}' (${LORA_TARGETS.join(', ')})`);
      }
    }
    const layers = options.layers ?? Array.from({ length: this.info.numLayers }, (_, i) => i);
    for (const l of layers) {
      if (!Number.isInteger(l) || l < 0 || l >= this.info.numLayers) {
        throw new HayateError('ERR_INVALID_ARGUMENT', `LoRA layer ${l} does not exist (the model has ${this.info.numLayers} layers)`);
      }
    }
    return layers.flatMap((layer) => targets.map((target) => ({ layer, target })));
  }

  /**
   * Runs native work on this model after every earlier call (the queue keeps call order), with
   * AbortSignal -> native cancel and typed errors. For the library's own classes (TrainerCore, adapters).
   * @internal
   */
  runNative<T>(signal: AbortSignal | undefined, work: (handle: NativeModelHandle, cancel: NativeCancelToken) => Promise<T>): Promise<T> {
    return this.run(signal, work);
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

  /**
   * The native onTurn of one generate call: runs the user's callback and answers each event with its result.
   * A throwing/rejecting callback ends the sequence (message kept for Completion.error); an invalid answer
   * cancels the call, and settle() then returns that error for generate to throw. Events that arrive once the
   * call has settled (cancelled) are ignored.
   */
  private turnHandler(onTurn: NonNullable<GenerateOptions['onTurn']>, stops: string[], cancel: NativeCancelToken) {
    const errors = new Map<string, string>();
    let settled = false;
    let invalid: HayateError | undefined;
    const where = (ev: NativeTurnEvent) => `onTurn answer for prompt ${ev.request}, sample ${ev.sample}, turn ${ev.turn}`;
    const answer = (ev: NativeTurnEvent, value: TurnAnswer) => {
      if (value === null || value === undefined) return ev.provide(null);
      if (!(value instanceof Int32Array) && !Array.isArray(value)) {
        throw new HayateError('ERR_INVALID_ARGUMENT', `${where(ev)}: expected an array of token ids or null, got ${typeof value}`);
      }
      const ids = Array.from(value as ArrayLike<number>);
      const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.info.vocabSize);
      if (bad >= 0) {
        throw new HayateError('ERR_INVALID_ARGUMENT', `${where(ev)}: token ${bad} (${String(ids[bad])}) is not a token id of the vocabulary (size ${this.info.vocabSize})`);
      }
      ev.provide(Int32Array.from(ids));
    };
    const handle = (ev: NativeTurnEvent) => {
      if (settled) return;
      const tokens = Array.from(ev.tokens);
      const turn: Turn = {
        request: ev.request,
        sample: ev.sample,
        turn: ev.turn,
        tokens,
        text: this.tokenizer ? this.tokenizer.decode(tokens, { skipSpecialTokens: true }) : '',
        logprobs: Array.from(ev.logprobs),
        completionTokens: ev.completionTokens,
        remainingTokens: ev.remainingTokens,
        maxAppendTokens: ev.maxAppendTokens,
      };
      if (ev.stopString >= 0) turn.stopString = stops[ev.stopString];
      new Promise<TurnAnswer>((resolve) => resolve(onTurn(turn)))
        .then(
          (value) => {
            if (!settled) answer(ev, value);
          },
          (err: unknown) => {
            if (settled) return;
            errors.set(`${ev.request}/${ev.sample}`, err instanceof Error ? err.message : String(err));
            ev.provide(null);
          },
        )
        .catch((err: unknown) => {
          if (settled) return;
          invalid ??= err instanceof HayateError ? err : (fromNative(err) as HayateError);
          cancel.cancel();
        });
    };
    return {
      onTurn: handle,
      errors,
      /** Marks the call over; the invalid-answer error, if one cancelled it. */
      settle: (): HayateError | undefined => {
        settled = true;
        return invalid;
      },
    };
  }

  /** A completion of an interactive request: all tokens, which of them the model sampled, its turns. */
  private toTurnCompletion(o: NativeOutput, stops: string[], errors: Map<string, string>): Completion {
    const stopString = o.stopString >= 0 ? stops[o.stopString] : undefined;
    // every turn's stop stays in the text, the last one's too: a conversation that ends at a tool call
    // reads as one (`...</tool_call>`), like the calls before it
    const text = this.tokenizer ? this.tokenizer.decode(Array.from(o.tokens), { skipSpecialTokens: true }) : '';
    const c: Completion = { text, tokens: Array.from(o.tokens), logprobs: Array.from(o.logprobs), finishReason: o.finishReason };
    if (stopString !== undefined) c.stopString = stopString;
    c.modelTokenMask = Array.from(o.tokenMask ?? []);
    c.turns = o.turns ?? 1;
    const error = errors.get(`${o.request}/${o.sample}`);
    if (error !== undefined) c.error = error;
    return c;
  }

  private requireTokenizer(): HfTokenizer {
    if (!this.tokenizer) throw new HayateError('ERR_TOKENIZER', `${this.dir} has no tokenizer.json: pass token ids ({ tokens: [...] }) instead of text`);
    return this.tokenizer;
  }

  /** Runs native work after every earlier call, with AbortSignal -> native cancel and typed errors. */
  private run<T>(signal: AbortSignal | undefined, work: (handle: NativeModelHandle, cancel: NativeCancelToken) => Promise<T>): Promise<T> {
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
