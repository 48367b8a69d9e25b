// HfTokenizer: a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json) behind a small
// typed API. Encoding/decoding is delegated to @huggingface/tokenizers and chat templates to
// @huggingface/jinja; this module adds what hayate needs on top: EOS ids gathered from every file that
// names them, and the exact bytes of each token (the native engine matches stop strings on bytes).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { HayateError } from './errors.js';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant turn header so the model continues as the assistant. */
  addGenerationPrompt?: boolean;
  /** Qwen3 templates: false renders an empty think block. Left undefined, the template's default applies. */
  enableThinking?: boolean;
  /** Extra template variables (e.g. tools). */
  extra?: Record<string, unknown>;
}

/**
 * GPT-2's byte -> printable character table used by byte-level BPE vocabularies: printable Latin-1 bytes
 * map to themselves, the other 68 bytes to U+0100 onwards, in byte order.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

type TokenByteScheme = 'byte-level' | 'sentencepiece' | 'utf8';

type JsonObject = Record<string, unknown>;

const utf8 = new TextEncoder();

/** A token given in tokenizer_config.json as a string or as an AddedToken object ({ content }). */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as JsonObject).content === 'string') return (v as JsonObject).content as string;
  return undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

async function readJson(path: string, what: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HayateError('ERR_NOT_FOUND', `${what} not found: ${path}`);
    throw new HayateError('ERR_IO', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    return json as JsonObject;
  } catch (err) {
    throw new HayateError('ERR_TOKENIZER', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** How vocabulary strings map to bytes, judged from the decoder tokenizer.json declares. */
function tokenByteScheme(tokenizerJson: JsonObject): TokenByteScheme {
  const types: string[] = [];
  const visit = (d: unknown) => {
    if (!d || typeof d !== 'object') return;
    const o = d as JsonObject;
    if (typeof o.type === 'string') types.push(o.type);
    if (Array.isArray(o.decoders)) o.decoders.forEach(visit);
  };
  visit(tokenizerJson.decoder);
  if (types.includes('ByteLevel')) return 'byte-level';
  if (types.includes('ByteFallback') || types.includes('Metaspace')) return 'sentencepiece';
  return 'utf8';
}

function byteLevelBytes(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = UNICODE_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...utf8.encode(ch)); // not a byte-level symbol: keep its text
  }
  return Uint8Array.from(out);
}

function sentencePieceBytes(token: string): Uint8Array {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
  if (m) return Uint8Array.of(parseInt(m[1], 16));
  return utf8.encode(token.replaceAll('\u2581', ' '));
}

export class HfTokenizer {
  /** Number of token ids (highest id + 1, added tokens included); may be below the model's vocab_size. */
  readonly vocabSize: number;
  /** Ids that end a completion: tokenizer_config eos_token, then generation_config.json / config.json eos ids. */
  readonly eosTokenIds: number[];
  readonly eosToken: string | undefined;
  readonly bosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly chatTemplate: string | undefined;
  private readonly tok: Tokenizer;
  private readonly config: JsonObject;
  private readonly scheme: TokenByteScheme;
  private readonly addedTokens: Map<number, string>;
  private template: Template | undefined;
  private bytesCache: Uint8Array[] | undefined;
  private readonly source: string;

  private constructor(tokenizerJson: JsonObject, config: JsonObject, extraEosIds: number[], chatTemplate: string | undefined, source: string) {
    this.source = source;
    try {
      this.tok = new Tokenizer(tokenizerJson, config);
    } catch (err) {
      throw new HayateError('ERR_TOKENIZER', `cannot build the tokenizer from ${source}: ${(err as Error).message}`, { cause: err });
    }
    this.config = config;
    this.scheme = tokenByteScheme(tokenizerJson);
    this.addedTokens = new Map();
    for (const t of (tokenizerJson.added_tokens ?? []) as { id: number; content: string }[]) this.addedTokens.set(t.id, t.content);
    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.eosToken = tokenContent(config.eos_token);
    this.bosToken = tokenContent(config.bos_token);
    this.padToken = tokenContent(config.pad_token);
    this.chatTemplate = chatTemplate;
    const eos = new Set<number>();
    const eosId = this.eosToken !== undefined ? this.tok.token_to_id(this.eosToken) : undefined;
    if (eosId !== undefined) eos.add(eosId);
    for (const id of extraEosIds) eos.add(id);
    this.eosTokenIds = [...eos];
  }

  /**
   * Loads tokenizer.json and tokenizer_config.json from a model directory, plus the EOS ids of
   * generation_config.json and config.json when present.
   */
  static async load(dir: string): Promise<HfTokenizer> {
    const tokenizerJson = await readJson(join(dir, 'tokenizer.json'), 'tokenizer.json');
    const config = await readJson(join(dir, 'tokenizer_config.json'), 'tokenizer_config.json');
    const extraEos: number[] = [];
    for (const file of ['generation_config.json', 'config.json']) {
      const path = join(dir, file);
      if (existsSync(path)) extraEos.push(...idList((await readJson(path, file)).eos_token_id));
    }
    const template = await findChatTemplate(dir, config);
    return new HfTokenizer(tokenizerJson, config, extraEos, template, dir);
  }

  /** Builds a tokenizer from already-parsed files (tests, embedded tokenizers). */
  static fromJson(tokenizerJson: JsonObject, tokenizerConfig: JsonObject, options: { extraEosIds?: number[] } = {}): HfTokenizer {
    return new HfTokenizer(tokenizerJson, tokenizerConfig, options.extraEosIds ?? [], templateFromConfig(tokenizerConfig), 'JSON objects');
  }

  /** Token ids of `text`; special tokens written in the text are recognised, as in transformers. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /**
   * Text of `ids`. Ids the tokenizer has no token for (a model's vocab_size is often padded past the
   * tokenizer's) decode to nothing, as in the Rust tokenizers, and as tokenBytes() reports them.
   */
  decode(ids: readonly number[] | Int32Array, options: { skipSpecialTokens?: boolean } = {}): string {
    const known: number[] = [];
    for (const id of ids) if (this.tok.id_to_token(id) !== undefined) known.push(id);
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Renders chat messages with the model's chat template (tokenizer_config.json chat_template). */
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === undefined) {
      throw new HayateError('ERR_TOKENIZER', `${this.source} has no chat template (no chat_template in tokenizer_config.json): pass plain text prompts instead of chat messages`);
    }
    try {
      this.template ??= new Template(this.chatTemplate);
    } catch (err) {
      throw new HayateError('ERR_TOKENIZER', `the chat template of ${this.source} does not parse: ${(err as Error).message}`, { cause: err });
    }
    // Like transformers: the special tokens are template variables; unset ones stay undefined.
    const context: Record<string, unknown> = { ...options.extra, messages, add_generation_prompt: options.addGenerationPrompt ?? false };
    if (options.enableThinking !== undefined) context.enable_thinking = options.enableThinking;
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const v = tokenContent(this.config[key]);
      if (v !== undefined) context[key] = v;
    }
    try {
      return this.template.render(context);
    } catch (err) {
      throw new HayateError('ERR_TOKENIZER', `rendering the chat template of ${this.source} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The exact bytes each token id stands for, indexed by id (length vocabSize; ids the tokenizer lacks map to
   * an empty array). Concatenating the bytes of encode(text) gives the UTF-8 bytes of text (for
   * byte-level BPE; SentencePiece decoders also drop a leading space, which these bytes keep).
   * The array is computed once and shared: do not modify it.
   */
  tokenBytes(): Uint8Array[] {
    if (this.bytesCache) return this.bytesCache;
    const out: Uint8Array[] = new Array<Uint8Array>(this.vocabSize);
    const empty = new Uint8Array(0);
    for (let id = 0; id < this.vocabSize; id++) {
      const added = this.addedTokens.get(id);
      if (added !== undefined) {
        out[id] = utf8.encode(added);
        continue;
      }
      const token = this.tok.id_to_token(id);
      if (token === undefined) out[id] = empty;
      else if (this.scheme === 'byte-level') out[id] = byteLevelBytes(token);
      else if (this.scheme === 'sentencepiece') out[id] = sentencePieceBytes(token);
      else out[id] = utf8.encode(token);
    }
    this.bytesCache = out;
    return out;
  }
}

/** chat_template as a string, or the "default" entry when it is a list of named templates. */
function templateFromConfig(config: JsonObject): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: string; template?: string }[];
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

/** tokenizer_config.json's template, else the separate files newer transformers versions save. */
async function findChatTemplate(dir: string, config: JsonObject): Promise<string | undefined> {
  const inConfig = templateFromConfig(config);
  if (inConfig !== undefined) return inConfig;
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFile(jinja, 'utf8');
  const json = join(dir, 'chat_template.json');
  if (existsSync(json)) return templateFromConfig(await readJson(json, 'chat_template.json'));
  return undefined;
}
