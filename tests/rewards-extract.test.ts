// Answer extraction and number normalisation: real GSM8K answers and adversarial strings.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGsm8kAnswer } from '../ts/data/gsm8k.js';
import { extractAnswer, findBoxed, hasBoxed, isCorrect } from '../ts/rewards/extract.js';
import { findNumbers, formatRational, makeRational, normalizeNumber } from '../ts/rewards/numbers.js';

const GSM8K = new URL('../data/gsm8k/', import.meta.url);

function records(split: 'train' | 'test'): { question: string; answer: string }[] {
  return readFileSync(new URL(`${split}.jsonl`, GSM8K), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { question: string; answer: string });
}

describe('GSM8K answer texts', () => {
  const all = [...records('train'), ...records('test')];

  it('reads every file', () => {
    expect(all.length).toBe(7473 + 1319);
  });

  it('extracts N from every "#### N" answer, as the hash source', () => {
    const failures: string[] = [];
    for (const r of all) {
      const tail = r.answer.slice(r.answer.lastIndexOf('####') + 4).trim();
      const expected = tail.replace(/,/g, '');
      const got = extractAnswer(r.answer);
      if (got?.value !== expected || got.source !== 'hash' || !isCorrect(r.answer, tail)) failures.push(`${tail} -> ${JSON.stringify(got)}`);
    }
    expect(failures).toEqual([]);
  });

  it('extracts N from \\boxed{N} variants of every answer', () => {
    const failures: string[] = [];
    all.forEach((r, i) => {
      const at = r.answer.lastIndexOf('####');
      const n = r.answer.slice(at + 4).trim();
      const solution = r.answer.slice(0, at);
      const plain = n.replace(/,/g, '');
      const variants = [
        `${solution}The answer is \\boxed{${n}}.`,
        `${solution}So the final answer is $\\boxed{${plain}}$`,
        `${solution}\\boxed{\\$${n}.00} dollars, and more text 99 after it`,
        `Echo: put your final answer within \\boxed{}.\n${solution}\\boxed{${plain} \\text{ units}}`,
        `${solution}#### 123456\n\\boxed{${n}}`,
      ];
      for (const v of variants) {
        const got = extractAnswer(v);
        if (got?.value !== plain || got.source !== 'boxed' || !isCorrect(v, n)) failures.push(`${i}: ${JSON.stringify(got)} for ${n}`);
      }
      // A wrong boxed number is wrong even when the "#### N" line is right.
      const wrong = `${r.answer}\n\\boxed{${BigInt(plain) + 1n}}`;
      if (isCorrect(wrong, n)) failures.push(`${i}: wrong boxed counted as correct`);
    });
    expect(failures).toEqual([]);
  });

  it('parses the ground truth of every record', () => {
    for (const r of all) expect(parseGsm8kAnswer(r.answer)?.answer).toMatch(/^-?\d+$/);
  });
});

describe('adversarial strings', () => {
  const cases: [string, string | null, string?][] = [
    ['\\boxed{18}', '18', 'boxed'],
    ['\\boxed{\\frac{1}{2}}', '0.5', 'boxed'],
    ['\\boxed{-\\dfrac{3}{4}}', '-0.75', 'boxed'],
    ['\\boxed{\\frac12}', '0.5', 'boxed'],
    ['\\boxed{1/3}', '1/3', 'boxed'],
    ['\\boxed{{{7}}}', '7', 'boxed'],
    ['\\boxed{\\boxed{7}}', '7', 'boxed'],
    ['\\boxed{x = 5}', '5', 'boxed'],
    ['\\boxed{2 \\times 3 = 6}', '6', 'boxed'],
    ['first \\boxed{3} then \\boxed{4}', '4', 'boxed'],
    ['\\boxed{3} and an unclosed \\boxed{4', '3', 'boxed'],
    ['\\boxed {12}', '12', 'boxed'],
    ['\\fbox{12}', '12', 'boxed'],
    ['\\boxed{}', null],
    ['\\boxed{} then 5', '5', 'last-number'],
    ['\\boxed{abc} #### 9', '9', 'hash'],
    ['\\boxed{1{,}000}', '1000', 'boxed'],
    ['\\boxed{1\\,000}', '1000', 'boxed'],
    ['\\boxed{\\$1,234.50}', '1234.5', 'boxed'],
    ['\\boxed{50\\%}', '50', 'boxed'],
    ['\\boxed{-7}', '-7', 'boxed'],
    ['\\boxed{\u22127}', '-7', 'boxed'],
    ['\\boxed{18.00}', '18', 'boxed'],
    ['\\boxed{0.50}', '0.5', 'boxed'],
    ['\\boxed{123456789012345678901234567890}', '123456789012345678901234567890', 'boxed'],
    ['#### 72', '72', 'hash'],
    ['#### $1,000', '1000', 'hash'],
    ['####-3', '-3', 'hash'],
    ['#### Step 2\nthe total is 11', '11', 'last-number'],
    ['#### 5\n#### 6', '6', 'hash'],
    ['<answer>42</answer>', '42', 'answer-tag'],
    ['<answer> x = 3 </answer> and 8', '3', 'answer-tag'],
    ['<answer>none</answer> but 8', '8', 'last-number'],
    ['She has 16 - 3 - 4 = 9 eggs.', '9', 'last-number'],
    ['The temperature is -5 degrees.', '-5', 'last-number'],
    ['It costs $2,125 in total', '2125', 'last-number'],
    ['It costs -$5', '-5', 'last-number'],
    ['12 apples and 3.50 dollars', '3.5', 'last-number'],
    ['about 1,2345 things', '2345', 'last-number'],
    ['Half is 1/2.', '0.5', 'last-number'],
    ['on 12/25/2020 we met', '12', 'last-number'],
    ['5/0 is undefined', '5', 'last-number'],
    ['version x2 and item3', null],
    ['no number here', null],
    ['', null],
    ['   \n\t ', null],
    ['99999999999999999999999999', '99999999999999999999999999', 'last-number'],
  ];
  it.each(cases)('%j -> %s', (text, value, source) => {
    const got = extractAnswer(text);
    if (value === null) expect(got).toBeNull();
    else {
      expect(got?.value).toBe(value);
      expect(got?.source).toBe(source);
    }
  });

  it('compares exactly', () => {
    expect(isCorrect('\\boxed{18.00}', '18')).toBe(true);
    expect(isCorrect('\\boxed{18.5}', '18')).toBe(false);
    expect(isCorrect('\\boxed{0.5}', '1/2')).toBe(true);
    expect(isCorrect('\\boxed{0.333}', '1/3')).toBe(false);
    expect(isCorrect('\\boxed{-3}', '3')).toBe(false);
    expect(isCorrect('\\boxed{1,000}', '1000')).toBe(true);
    expect(isCorrect('\\boxed{12345678901234567891}', '12345678901234567890')).toBe(false);
    expect(isCorrect('no answer', '5')).toBe(false);
    expect(isCorrect('\\boxed{5}', 'five')).toBe(false);
    expect(isCorrect('', '')).toBe(false);
  });

  it('finds balanced boxes only', () => {
    expect(findBoxed('\\boxed{a{b}c} \\boxed{d').map((b) => b.content)).toEqual(['a{b}c']);
    expect(findBoxed('\\boxed{\\{1\\}}').map((b) => b.content)).toEqual(['\\{1\\}']);
    expect(hasBoxed('\\boxed{}')).toBe(false);
    expect(hasBoxed('\\boxed{ }')).toBe(false);
    expect(hasBoxed('\\boxed{x}')).toBe(true);
    expect(hasBoxed('\\boxed{5')).toBe(false);
  });
});

describe('numbers', () => {
  it('formats canonically', () => {
    expect(formatRational(makeRational(10n, 4n)!)).toBe('2.5');
    expect(formatRational(makeRational(-1n, 8n)!)).toBe('-0.125');
    expect(formatRational(makeRational(2n, 6n)!)).toBe('1/3');
    expect(formatRational(makeRational(0n, -5n)!)).toBe('0');
    expect(makeRational(1n, 0n)).toBeNull();
    expect(normalizeNumber('-0')).toBe('0');
    expect(normalizeNumber('007')).toBe('7');
    expect(normalizeNumber('.5')).toBe('0.5');
  });

  it('finds numbers in prose', () => {
    expect(findNumbers('16-3-4=9, then -2 and 1,000,000.5').map((m) => formatRational(m.value))).toEqual(['16', '3', '4', '9', '-2', '1000000.5']);
  });
});
