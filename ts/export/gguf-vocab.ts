// The tokenizer as llama.cpp reads it from GGUF metadata, from a Hugging Face tokenizer directory
// (tokenizer.json, tokenizer_config.json, config.json): byte-level BPE vocabularies ("gpt2" in llama.cpp's
// terms) with their merges, token types, special token ids, BOS/EOS flags, the pre-tokenizer's name and the
// chat template. llama.cpp knows pre-tokenizers by name, not by regex, so the split pattern in tokenizer.json
// is matched against the ones of the supported families.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HayateError } from '../errors.js';
import type { MetadataValue } from './gguf-format.js';

/** llama.cpp's token types. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;

/** The split patterns of the byte-level BPE families hayate supports, by llama.cpp's pre-tokenizer name. */
const SPLIT_PATTERNS: Record<string, string> = {
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

/** Pre-tokenizer names llama.cpp accepts that the export can be told to use. */
export const GGUF_PRE_TOKENIZERS = ['qwen2', 'llama-bpe', 'gpt-2'] as const;

function readJsonFile(path: string): Json {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (err) {
    throw new HayateError('ERR_TOKENIZER', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/** The pre-tokenizers of tokenizer.json, flattened out of Sequence. */
function preTokenizerList(p: unknown): Json[] {
  if (!p || typeof p !== 'object') return [];
  const j = p as Json;
  if (j.type === 'Sequence' && Array.isArray(j.pretokenizers)) return (j.pretokenizers as unknown[]).flatMap(preTokenizerList);
  return [j];
}

/** llama.cpp's name for the pre-tokenizer tokenizer.json describes; throws when it is not one it has. */
export function detectPreTokenizer(tokenizerJson: Json, where: string): string {
  const list = preTokenizerList(tokenizerJson.pre_tokenizer);
  const splits = list.filter((p) => p.type === 'Split');
  const byteLevel = list.filter((p) => p.type === 'ByteLevel');
  if (splits.length === 1 && byteLevel.length === 1 && list.length === 2 && byteLevel[0].use_regex === false) {
    const pattern = splits[0].pattern as Json | undefined;
    const regex = typeof pattern?.Regex === 'string' ? pattern.Regex : undefined;
    for (const [name, p] of Object.entries(SPLIT_PATTERNS)) if (regex === p) return name;
  }
  if (splits.length === 0 && byteLevel.length === 1 && list.length === 1 && byteLevel[0].use_regex !== false) return 'gpt-2';
  throw new HayateError(
    'ERR_TOKENIZER',
    `${where}: the pre-tokenizer is not one llama.cpp knows by name (recognised: Qwen2/Qwen3, Llama 3, GPT-2 byte-level); ` +
      `pass preTokenizer (${GGUF_PRE_TOKENIZERS.join(', ')}) if you know which one it is`,
  );
}

/** llama.cpp's converter treats these added tokens as control tokens even when not marked special. */
function looksSpecial(token: string): boolean {
  return (
    token === '<pad>' || token === '<mask>' ||
    (token.startsWith('<|') && token.endsWith('|>')) ||
    (token.startsWith('<\uff5c') && token.endsWith('\uff5c>'))
  );
}

function isByteLevel(decoder: unknown): boolean {
  if (!decoder || typeof decoder !== 'object') return false;
  const d = decoder as Json;
  if (d.type === 'ByteLevel') return true;
  return d.type === 'Sequence' && Array.isArray(d.decoders) && (d.decoders as unknown[]).some(isByteLevel);
}

/** Whether the post-processor puts `bos` first in a single sequence (how Llama 3's tokenizer adds BOS). */
function postProcessorAddsBos(post: unknown, bosId: number): boolean {
  if (!post || typeof post !== 'object') return false;
  const p = post as Json;
  if (p.type === 'Sequence' && Array.isArray(p.processors)) return (p.processors as unknown[]).some((q) => postProcessorAddsBos(q, bosId));
  if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) return false;
  const first = (p.single as Json[])[0];
  const special = first?.SpecialToken as Json | undefined;
  if (!special || typeof special.id !== 'string') return false;
  const entry = (p.special_tokens as Json | undefined)?.[special.id] as Json | undefined;
  return Array.isArray(entry?.ids) && (entry.ids as unknown[])[0] === bosId;
}

function chatTemplate(dir: string, tokenizerConfig: Json): { main?: string; named: Map<string, string> } {
  const named = new Map<string, string>();
  let main: string | undefined;
  const t = tokenizerConfig.chat_template;
  if (typeof t === 'string') main = t;
  else if (Array.isArray(t)) {
    for (const e of t as Json[]) {
      if (typeof e?.name !== 'string' || typeof e.template !== 'string') continue;
      if (e.name === 'default') main = e.template;
      else named.set(e.name, e.template);
    }
  }
  if (main === undefined && existsSync(join(dir, 'chat_template.jinja'))) main = readFileSync(join(dir, 'chat_template.jinja'), 'utf8');
  if (main === undefined && existsSync(join(dir, 'chat_template.json'))) {
    const j = readJsonFile(join(dir, 'chat_template.json'));
    if (typeof j.chat_template === 'string') main = j.chat_template;
  }
  return { main, named };
}

export interface VocabOptions {
  /** Embedding rows: ids the tokenizer does not define up to here become unused [PADi] tokens. */
  vocabSize: number;
  /** Override the pre-tokenizer name (default: recognised from tokenizer.json). */
  preTokenizer?: string;
}

/** The tokenizer metadata of a model directory, as GGUF key/values. */
export function tokenizerMetadata(dir: string, options: VocabOptions): Map<string, MetadataValue> {
  const tjPath = join(dir, 'tokenizer.json');
  if (!existsSync(tjPath)) throw new HayateError('ERR_TOKENIZER', `${dir} has no tokenizer.json; llama.cpp needs the vocabulary in the GGUF file`);
  const tj = readJsonFile(tjPath);
  const tcPath = join(dir, 'tokenizer_config.json');
  const tc = existsSync(tcPath) ? readJsonFile(tcPath) : {};
  const cfgPath = join(dir, 'config.json');
  const config = existsSync(cfgPath) ? readJsonFile(cfgPath) : {};

  const model = tj.model as Json | undefined;
  if (!model || model.type !== 'BPE' || !isByteLevel(tj.decoder)) {
    throw new HayateError('ERR_TOKENIZER', `${tjPath}: only byte-level BPE tokenizers (Qwen2/Qwen3, Llama 3, GPT-2 style) can be exported to GGUF so far; this one is ${String(model?.type)} with a ${String((tj.decoder as Json | undefined)?.type)} decoder`);
  }
  const pre = options.preTokenizer ?? detectPreTokenizer(tj, tjPath);

  const vocab = model.vocab as Record<string, number>;
  const added = new Map<number, { content: string; special: boolean }>();
  for (const a of (tj.added_tokens as Json[] | undefined) ?? []) {
    if (typeof a.id === 'number' && typeof a.content === 'string') added.set(a.id, { content: a.content, special: a.special === true });
  }
  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(vocab)) byId.set(id, tok);
  for (const [id, a] of added) byId.set(id, a.content);
  let maxId = -1;
  for (const id of byId.keys()) maxId = Math.max(maxId, id);
  if (maxId >= options.vocabSize) {
    throw new HayateError('ERR_TOKENIZER', `${tjPath} has token id ${maxId}, but the model's embedding has only ${options.vocabSize} rows`);
  }

  const tokens: string[] = new Array<string>(options.vocabSize);
  const types = new Int32Array(options.vocabSize);
  for (let i = 0; i < options.vocabSize; i++) {
    const tok = byId.get(i);
    if (tok === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
      continue;
    }
    tokens[i] = tok;
    const a = added.get(i);
    types[i] = a === undefined ? TOKEN_TYPE.NORMAL : a.special || looksSpecial(tok) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }

  const merges = ((model.merges as unknown[] | undefined) ?? []).map((m) => (Array.isArray(m) ? (m as string[]).join(' ') : String(m)));

  const idOf = (content: string | undefined): number | undefined => {
    if (content === undefined) return undefined;
    for (const [id, a] of added) if (a.content === content) return id;
    return vocab[content];
  };
  const configId = (key: string): number | undefined => {
    const v = config[key];
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && typeof v[0] === 'number') return v[0] as number;
    return undefined;
  };
  const special = (typ: string) => idOf(tokenContent(tc[`${typ}_token`])) ?? configId(`${typ}_token_id`);
  const bos = special('bos');
  const eos = special('eos');
  const unk = special('unk');
  const pad = special('pad');

  const meta = new Map<string, MetadataValue>();
  meta.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  meta.set('tokenizer.ggml.pre', { type: 'string', value: pre });
  meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
  meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
  meta.set('tokenizer.ggml.merges', { type: 'string[]', value: merges });
  const setId = (key: string, id: number | undefined) => {
    if (id !== undefined && id >= 0 && id < options.vocabSize) meta.set(key, { type: 'u32', value: id });
  };
  setId('tokenizer.ggml.bos_token_id', bos);
  setId('tokenizer.ggml.eos_token_id', eos);
  setId('tokenizer.ggml.unknown_token_id', unk);
  setId('tokenizer.ggml.padding_token_id', pad);
  const addBos = typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : bos !== undefined && postProcessorAddsBos(tj.post_processor, bos);
  meta.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: addBos });
  if (typeof tc.add_eos_token === 'boolean') meta.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: tc.add_eos_token });
  const templates = chatTemplate(dir, tc);
  if (templates.main !== undefined) meta.set('tokenizer.chat_template', { type: 'string', value: templates.main });
  for (const [name, t] of templates.named) meta.set(`tokenizer.chat_template.${name}`, { type: 'string', value: t });
  if (templates.named.size > 0) meta.set('tokenizer.chat_templates', { type: 'string[]', value: [...templates.named.keys()] });
  return meta;
}
