// Datasets: GSM8K and field-mapped JSONL, invalid lines, prompts and chat templates, deterministic
// shuffling / sharding / sampling, tokenization pool.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDatasetPath } from '../ts/data/bundled.js';
import { datasetFromJsonl, examplesFromRecords, loadDataset } from '../ts/data/dataset.js';
import { DatasetError, type LineIssue } from '../ts/data/errors.js';
import { parseGsm8kAnswer, toBoxedSolution } from '../ts/data/gsm8k.js';
import { BatchSampler, distributedFromEnv, seededSubset, shard } from '../ts/data/order.js';
import { DEFAULT_INSTRUCTION, buildPrompt, renderPrompt } from '../ts/data/prompt.js';
import { Rng, deriveSeed, permutation, shuffle } from '../ts/data/random.js';
import { tokenizeAll, TokenizerPool } from '../ts/data/tokenize.js';
import { initModel } from '../ts/init-model.js';
import { HfTokenizer } from '../ts/tokenizer.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/data/', import.meta.url));
const GSM8K_TEST = fileURLToPath(new URL('../data/gsm8k/test.jsonl', import.meta.url));
const GSM8K_TRAIN = fileURLToPath(new URL('../data/gsm8k/train.jsonl', import.meta.url));

afterAll(() => cleanupTempDirs());

describe('GSM8K datasets', () => {
  it('resolves the bundled names to the copy shipped in data/gsm8k', async () => {
    expect(resolveDatasetPath('gsm8k')).toBe(GSM8K_TRAIN);
    expect(resolveDatasetPath('gsm8k:train')).toBe(GSM8K_TRAIN);
    expect(resolveDatasetPath('gsm8k:test')).toBe(GSM8K_TEST);
    expect(resolveDatasetPath('./gsm8k')).toBe('./gsm8k');
    const test = await loadDataset('gsm8k:test');
    expect(test.file).toBe(GSM8K_TEST);
    expect(test.examples).toHaveLength(1319);
    expect((await loadDataset('gsm8k')).examples).toHaveLength(7473);
  });

  it('loads the real files', async () => {
    const test = await loadDataset(GSM8K_TEST);
    const train = await loadDataset(GSM8K_TRAIN);
    expect(test.examples).toHaveLength(1319);
    expect(train.examples).toHaveLength(7473);
    expect(test.skipped).toEqual([]);
    const first = test.examples[0];
    expect(first.index).toBe(0);
    expect(first.answer).toBe('18');
    expect(first.question).toMatch(/^Janet/);
    expect(first.prompt).toBe(`${first.question}\n${DEFAULT_INSTRUCTION}`);
    expect(first.solution).toMatch(/^Janet sells 16 - 3 - 4/);
    expect(first.source).toEqual({ file: GSM8K_TEST, line: 1 });
    expect(first.raw.answer).toMatch(/#### 18$/);
    // Answers with thousands separators are normalised.
    const withCommas = [...train.examples, ...test.examples].filter((e) => /#### [\d,]*,\d{3}$/.test(e.raw.answer as string));
    expect(withCommas.length).toBeGreaterThan(50);
    for (const e of withCommas) expect(e.answer).toBe((e.raw.answer as string).split('#### ')[1].replace(/,/g, ''));
  });

  it('reports invalid lines with file:line, fatal by default', async () => {
    const path = join(FIXTURES, 'gsm8k-bad.jsonl');
    const err = await loadDataset(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('ERR_INVALID_ARGUMENT');
    expect((err as DatasetError).message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: not valid JSON .*and 3 more invalid lines`));
    expect((err as DatasetError).issues.map((i) => i.line)).toEqual([2, 3, 6, 7]);
  });

  it('skips invalid lines on request and reports them', async () => {
    const warned: LineIssue[] = [];
    const path = join(FIXTURES, 'gsm8k-bad.jsonl');
    const ds = await loadDataset(path, { onInvalid: 'skip', onWarning: (i) => warned.push(i) });
    expect(ds.examples.map((e) => [e.index, e.answer, e.source?.line])).toEqual([
      [0, '5', 1],
      [1, '1200', 5],
    ]);
    expect(ds.skipped.map((i) => [i.line, i.message.split(' (')[0]])).toEqual([
      [2, 'not valid JSON'],
      [3, 'field "answer" has no final "#### <number>" line'],
      [6, 'expected a JSON object'],
      [7, 'missing or empty string field "question"'],
    ]);
    expect(warned).toEqual(ds.skipped);
  });

  it('an empty dataset is an error', () => {
    expect(() => datasetFromJsonl('\n\n', 'empty.jsonl')).toThrow(/dataset empty.jsonl is empty: the file has no records/);
    expect(() => datasetFromJsonl('oops\n', 'bad.jsonl', { onInvalid: 'skip' })).toThrow(/all 1 lines are invalid \(first: bad.jsonl:1: not valid JSON/);
    expect(() => examplesFromRecords([])).toThrow(DatasetError);
  });

  it('a missing file is ERR_NOT_FOUND', async () => {
    await expect(loadDataset(join(FIXTURES, 'nope.jsonl'))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });

  it('parses GSM8K answers and builds SFT targets', () => {
    expect(parseGsm8kAnswer('a\n#### -3')).toEqual({ answer: '-3', solution: 'a' });
    expect(parseGsm8kAnswer('#### $18.00')).toEqual({ answer: '18', solution: '' });
    expect(parseGsm8kAnswer('no line')).toBeNull();
    expect(toBoxedSolution('He has 2 * 3 = <<2*3=6>>6 eggs.\n#### 6')).toBe('He has 2 * 3 = 6 eggs.\nThe final answer is \\boxed{6}.');
    expect(toBoxedSolution('x <<1+1=2>>2\n#### 2', { keepAnnotations: true, closing: '\\boxed{{answer}}' })).toBe('x <<1+1=2>>2\n\\boxed{2}');
  });
});

describe('field-mapped JSONL', () => {
  it('maps prompt and answer fields (dotted paths)', async () => {
    const ds = await loadDataset(join(FIXTURES, 'generic.jsonl'), { format: 'jsonl', promptField: 'problem.text', answerField: 'solution', onInvalid: 'skip', instruction: null });
    expect(ds.examples.map((e) => [e.prompt, e.answer])).toEqual([
      ['What is 6 * 7?', '42'],
      ['What is 1/2 + 1/4?', '0.75'],
      ['Name a colour', 'Blue'],
      ['GSM-like', '8'],
    ]);
    expect(ds.examples[3].solution).toBe('2 * 4 = 8');
    expect(ds.skipped.map((i) => [i.line, i.message])).toEqual([[5, 'missing field "solution" (a number or a non-empty string)']]);
  });

  it('names the missing prompt field', () => {
    expect(() => datasetFromJsonl('{"q": "x", "answer": 1}\n', 'f.jsonl', { format: 'jsonl' })).toThrow(/f.jsonl:1: missing or empty string field "prompt"/);
    expect(() => datasetFromJsonl('{}\n', 'f.jsonl', { format: 'csv' as 'jsonl' })).toThrow(/unknown dataset format/);
  });
});

describe('prompts', () => {
  let tokenizerDir: string;
  beforeAll(async () => {
    tokenizerDir = tempDir();
    await initModel(tokenizerDir, { shape: 'tiny', layers: 1 });
  });

  it('builds text and chat prompts', () => {
    expect(buildPrompt(' Q? ')).toBe(`Q?\n${DEFAULT_INSTRUCTION}`);
    expect(buildPrompt('Q?', { instruction: '' })).toBe('Q?');
    expect(buildPrompt('Q?', { chat: true, systemPrompt: 'Be brief.', instruction: 'Box it.' })).toEqual({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Q?\nBox it.' },
      ],
    });
  });

  it("renders chat prompts with the model's template", async () => {
    const tok = await HfTokenizer.load(tokenizerDir);
    const ds = datasetFromJsonl('{"question": "What is 2+2?", "answer": "#### 4"}\n', 'x.jsonl', { chat: true });
    const text = renderPrompt(ds.examples[0].prompt, tok);
    expect(text).toBe(`<|im_start|>user\nWhat is 2+2?\n${DEFAULT_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n`);
    expect(renderPrompt('plain', tok)).toBe('plain');
  });

  it('tokenizes in a worker pool exactly like the tokenizer', async () => {
    const tok = await HfTokenizer.load(tokenizerDir);
    const ds = await loadDataset(GSM8K_TEST);
    const texts = ds.examples.slice(0, 300).map((e) => e.prompt as string);
    const ids = await tokenizeAll(tokenizerDir, texts, { chunkSize: 64, threads: 2 });
    expect(ids).toHaveLength(300);
    ids.forEach((row, i) => expect(Array.from(row)).toEqual(tok.encode(texts[i])));
    const pool = new TokenizerPool(tokenizerDir, { threads: 1 });
    try {
      const rendered = renderPrompt({ messages: [{ role: 'user', content: 'hi' }] }, tok);
      expect(Array.from((await pool.encode([rendered], { addSpecialTokens: false }))[0])).toEqual(tok.encode(rendered, { addSpecialTokens: false }));
    } finally {
      await pool.close();
    }
    expect(await tokenizeAll(tokenizerDir, [])).toEqual([]);
    expect(() => new TokenizerPool(join(tokenizerDir, 'nope'))).toThrow(/tokenizer.json not found/);
  });
});

describe('deterministic order', () => {
  it('seeded PRNG and permutations are reproducible', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs);
    expect(new Rng(43).nextU32()).not.toBe(xs[0]);
    // Pinned values: the order must not change across releases (resumed runs depend on it).
    expect(permutation(10, 1)).toEqual([2, 6, 0, 7, 9, 5, 4, 1, 8, 3]);
    expect(new Rng(42).nextU32()).toBe(3413187072);
    expect(deriveSeed(1, 2)).toBe(1782305084);
    expect(permutation(10, 1).slice().sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(permutation(10, 1)).not.toEqual(permutation(10, 2));
    expect(deriveSeed(1, 2)).not.toBe(deriveSeed(2, 1));
    expect(deriveSeed(2 ** 40)).not.toBe(deriveSeed(0));
    for (let i = 0; i < 1000; i++) {
      const v = a.int(-3, 3);
      expect(v >= -3 && v <= 3 && Number.isInteger(v)).toBe(true);
    }
  });

  it('shuffles deterministically by seed', () => {
    const items = Array.from({ length: 50 }, (_, i) => `item${i}`);
    expect(shuffle(items, 7)).toEqual(shuffle(items, 7));
    expect(shuffle(items, 7)).not.toEqual(items);
    expect(shuffle(items, 7).sort()).toEqual(items.slice().sort());
  });

  it('shards are disjoint, cover everything, and are stable', () => {
    const items = shuffle(Array.from({ length: 103 }, (_, i) => i), 3);
    const shards = [0, 1, 2, 3].map((rank) => shard(items, { rank, worldSize: 4 }));
    expect(shards.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 103 }, (_, i) => i));
    expect(shards.map((s) => s.length)).toEqual([26, 26, 26, 25]);
    const even = [0, 1, 2, 3].map((rank) => shard(items, { rank, worldSize: 4, even: true }));
    expect(even.map((s) => s.length)).toEqual([25, 25, 25, 25]);
    expect(shard(items, { rank: 2, worldSize: 4 })).toEqual(shards[2]);
    expect(() => shard(items, { rank: 4, worldSize: 4 })).toThrow(/rank/);
    expect(() => shard(items, { rank: 0, worldSize: 0 })).toThrow(/world size/);
  });

  it('reads rank and world size from the environment', () => {
    expect(distributedFromEnv({})).toEqual({ rank: 0, worldSize: 1 });
    expect(distributedFromEnv({ RANK: '3', WORLD_SIZE: '8' })).toEqual({ rank: 3, worldSize: 8 });
    expect(() => distributedFromEnv({ RANK: '8', WORLD_SIZE: '8' })).toThrow(/rank/);
    expect(() => distributedFromEnv({ RANK: 'x' })).toThrow(/RANK/);
  });

  it('picks seeded subsets in original order', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const a = seededSubset(items, 10, 5);
    expect(a).toEqual(seededSubset(items, 10, 5));
    expect(a).not.toEqual(seededSubset(items, 10, 6));
    expect(a).toEqual(a.slice().sort((x, y) => x - y));
    expect(new Set(a).size).toBe(10);
    expect(seededSubset(items, undefined, 1)).toEqual(items);
    expect(seededSubset(items, 1000, 1)).toEqual(items);
  });

  it('batch sampler walks seeded epochs, splits ranks, and resumes exactly', () => {
    const size = 10;
    const s = new BatchSampler(size, { batchSize: 4, seed: 9 });
    const batches = Array.from({ length: 5 }, () => s.next());
    // Epochs 0 and 1 are each a permutation of all items.
    expect(batches.flat().slice(0, 10).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(batches.flat().slice(10, 20).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(batches.flat().slice(0, 10)).not.toEqual(batches.flat().slice(10, 20));
    // Resume from a saved state.
    const a = new BatchSampler(size, { batchSize: 4, seed: 9 });
    a.next();
    a.next();
    const saved = a.state();
    const b = new BatchSampler(size, { batchSize: 4, seed: 9 });
    b.restore(JSON.parse(JSON.stringify(saved)) as typeof saved);
    expect([b.next(), b.next(), b.next()]).toEqual(batches.slice(2));
    // Two ranks see disjoint halves of each global batch.
    const r0 = new BatchSampler(size, { batchSize: 2, seed: 9, rank: 0, worldSize: 2 });
    const r1 = new BatchSampler(size, { batchSize: 2, seed: 9, rank: 1, worldSize: 2 });
    expect([...r0.next(), ...r1.next()]).toEqual(batches[0]);
    expect(() => b.restore({ epoch: 0, position: 10 })).toThrow(/does not fit/);
    expect(() => new BatchSampler(0, { batchSize: 1 })).toThrow();
    const ordered = new BatchSampler(3, { batchSize: 2, shuffle: false });
    expect([ordered.next(), ordered.next()]).toEqual([
      [0, 1],
      [2, 0],
    ]);
  });
});

describe('jsonl details', () => {
  it('accepts CRLF and a BOM, reports 1-based lines', () => {
    const dir = tempDir();
    const path = join(dir, 'crlf.jsonl');
    writeFileSync(path, '\uFEFF{"question": "a", "answer": "#### 1"}\r\n\r\n{"question": "b", "answer": "#### 2"}\r\n{bad\r\n');
    const ds = datasetFromJsonl(readFileSync(path, 'utf8'), path, { onInvalid: 'skip' });
    expect(ds.examples.map((e) => e.answer)).toEqual(['1', '2']);
    expect(ds.skipped.map((i) => i.line)).toEqual([4]);
  });
});

