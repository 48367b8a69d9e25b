import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwen3TokenizerFiles } from '../ts/init-model.js';
import { tinyTokenizerConfig, tinyTokenizerJson } from '../ts/tiny-tokenizer.js';
import { BYTE_TO_UNICODE, HfTokenizer, UNICODE_TO_BYTE } from '../ts/tokenizer.js';

const root = mkdtempSync(join(tmpdir(), 'hayate-tok-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SAMPLES = [
  '',
  'Hello World',
  'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. #### 72',
  'The answer is \\boxed{1,234.5}. <answer>18</answer>',
  '  leading and trailing spaces  \n\n\ttabs\r\nCRLF',
  'emoji 🤗👩‍👩‍👧 and CJK 日本語の文章 and 한국어, accents é ü ß, math ∑ x² ≤ π',
  "it's they're we've I'm you'll he'd",
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('GPT-2 byte table', () => {
  it('is a bijection of the 256 bytes onto printable characters', () => {
    expect(new Set(BYTE_TO_UNICODE).size).toBe(256);
    expect(BYTE_TO_UNICODE[0x20]).toBe('\u0120'); // space -> Ġ
    expect(BYTE_TO_UNICODE[0x0a]).toBe('\u010a'); // newline -> Ċ
    expect(BYTE_TO_UNICODE[0x41]).toBe('A');
    for (let b = 0; b < 256; b++) expect(UNICODE_TO_BYTE.get(BYTE_TO_UNICODE[b])).toBe(b);
  });
});

describe('tiny tokenizer', () => {
  let tok: HfTokenizer;
  beforeAll(async () => {
    const dir = join(root, 'tiny');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tinyTokenizerConfig(512)));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [999, 456] }));
    tok = await HfTokenizer.load(dir);
  });

  it('has a modest byte-level BPE vocabulary with the ChatML special tokens', () => {
    expect(tok.vocabSize).toBeGreaterThanOrEqual(400);
    expect(tok.vocabSize).toBeLessThanOrEqual(512);
    const imEnd = tok.tokenToId('<|im_end|>')!;
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.padToken).toBe('<|endoftext|>');
    expect(tok.eosTokenIds).toEqual([imEnd, 999, 456]); // tokenizer's eos first, then generation_config's
    expect(tok.encode('<|im_start|>')).toEqual([tok.tokenToId('<|im_start|>')]);
    // learned merges make common words and numbers shorter than their bytes
    expect(tok.encode(' The answer is 100').length).toBeLessThan(' The answer is 100'.length / 2);
  });

  it('roundtrips any text exactly', () => {
    for (const s of SAMPLES) expect(tok.decode(tok.encode(s))).toBe(s);
    // non-NFC text is kept as is: the tiny tokenizer has no normalizer
    const decomposed = 'e\u0301';
    expect(tok.decode(tok.encode(decomposed))).toBe(decomposed);
  });

  it('tokenBytes of the encoding concatenate to the UTF-8 bytes of the text', () => {
    const bytes = tok.tokenBytes();
    expect(bytes.length).toBe(tok.vocabSize);
    for (const s of SAMPLES) expect(Buffer.from(concat(tok.encode(s).map((id) => bytes[id])))).toEqual(Buffer.from(s, 'utf8'));
    expect(Buffer.from(bytes[tok.tokenToId('<|im_end|>')!]).toString()).toBe('<|im_end|>');
  });

  it('decodes skipping special tokens, and ignores ids past the tokenizer', () => {
    const ids = tok.encode('<|im_start|>assistant\nhi<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('assistant\nhi');
    expect(tok.decode([...tok.encode('ok'), tok.vocabSize + 5])).toBe('ok');
    expect(tok.decode([])).toBe('');
  });

  it('renders a ChatML prompt', () => {
    const text = tok.applyChatTemplate(
      [
        { role: 'system', content: 'Solve it.' },
        { role: 'user', content: 'What is 2+2?' },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe('<|im_start|>system\nSolve it.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
  });
});

describe('Qwen3 tokenizer', () => {
  let tok: HfTokenizer;
  beforeAll(async () => {
    const dir = join(root, 'qwen3');
    mkdirSync(dir);
    const src = qwen3TokenizerFiles();
    copyFileSync(src.tokenizerJson, join(dir, 'tokenizer.json'));
    copyFileSync(src.tokenizerConfig, join(dir, 'tokenizer_config.json'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ eos_token_id: 151645 }));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643] }));
    tok = await HfTokenizer.load(dir);
  });

  it('loads with the known ids', () => {
    expect(tok.vocabSize).toBe(151669);
    expect(tok.eosTokenIds).toEqual([151645, 151643]);
    expect(tok.encode('Hello World')).toEqual([9707, 4337]);
    expect(tok.encode('<|im_start|>user\nhi<|im_end|>\n')).toEqual([151644, 872, 198, 6023, 151645, 198]);
  });

  it('roundtrips (NFC) text and tokenBytes match the UTF-8 bytes', () => {
    const bytes = tok.tokenBytes();
    expect(bytes.length).toBe(151669);
    for (const s of SAMPLES) {
      const ids = tok.encode(s);
      expect(tok.decode(ids)).toBe(s);
      expect(Buffer.from(concat(ids.map((id) => bytes[id])))).toEqual(Buffer.from(s, 'utf8'));
    }
    expect(Buffer.from(bytes[tok.tokenToId('<think>')!]).toString()).toBe('<think>');
  });

  it('renders the Qwen3 chat template, with and without thinking', () => {
    const messages = [{ role: 'user', content: 'What is 2+2?' }];
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true, enableThinking: false })).toBe(
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
    const history = tok.applyChatTemplate([...messages, { role: 'assistant', content: '<think>\nadd\n</think>\n\n4' }]);
    expect(history).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n');
  });
});

describe('errors', () => {
  it('names the missing file', async () => {
    const dir = join(root, 'empty');
    mkdirSync(dir);
    await expect(HfTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json not found/);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    await expect(HfTokenizer.load(dir)).rejects.toThrow(/tokenizer_config\.json not found/);
  });

  it('says so when there is no chat template', () => {
    const config = { ...tinyTokenizerConfig(512), chat_template: undefined };
    const tok = HfTokenizer.fromJson(tinyTokenizerJson(), config);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/no chat template/);
  });
});
