// Final-answer extraction from a completion, with the recipe's fallbacks:
//   1. the last complete \boxed{...} (braces balanced) whose content holds a number,
//   2. the last "#### N" line,
//   3. the last complete <answer>...</answer>,
//   4. the last number in the text.
// A \boxed{} without a number (e.g. the instruction echoed back: "within \boxed{}") is skipped, as is
// an unclosed one at the end of a truncated completion. Values are compared exactly (see numbers.ts).
import { findNumbers, formatRational, parseNumber, rationalEquals, type Rational } from './numbers.js';

export type AnswerSource = 'boxed' | 'hash' | 'answer-tag' | 'last-number';

export interface ExtractedAnswer {
  /** Canonical number: "18", "-5", "0.5", "1/3". */
  value: string;
  source: AnswerSource;
  /** The text the number was taken from (the box's content, the #### line, ...). */
  raw: string;
}

export interface BoxedSpan {
  /** Text between the braces. */
  content: string;
  /** Index of the backslash of \boxed. */
  start: number;
  /** Index just past the closing brace. */
  end: number;
}

const BOX_COMMAND = /\\(?:boxed|fbox)\s*\{/g;

/** Every complete \boxed{...} (and \fbox{...}) in order; nested braces are balanced, unclosed boxes ignored. */
export function findBoxed(text: string): BoxedSpan[] {
  const spans: BoxedSpan[] = [];
  BOX_COMMAND.lastIndex = 0;
  for (let m = BOX_COMMAND.exec(text); m !== null; m = BOX_COMMAND.exec(text)) {
    const open = m.index + m[0].length; // just past '{'
    let depth = 1;
    let i = open;
    for (; i < text.length && depth > 0; i++) {
      const ch = text[i];
      if (ch === '\\' && (text[i + 1] === '{' || text[i + 1] === '}')) {
        i++; // an escaped brace does not count
        continue;
      }
      if (ch === '{') depth++;
      else if (ch === '}') depth--;
    }
    if (depth === 0) {
      spans.push({ content: text.slice(open, i - 1), start: m.index, end: i });
      BOX_COMMAND.lastIndex = i;
    }
  }
  return spans;
}

/** Turns LaTeX number notation into plain text: \frac{a}{b} -> a/b, \text{..} -> .., 1{,}000 -> 1,000, \$ -> ''. */
export function stripLatex(s: string): string {
  let t = s;
  for (let k = 0; k < 4; k++) {
    const before = t;
    t = t.replace(/\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}/g, ' $1 ');
    t = t.replace(/\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}/g, '$1/$2');
    t = t.replace(/\\[dt]?frac\s*(\d)\s*(\d)/g, '$1/$2');
    if (t === before) break;
  }
  return t
    .replace(/\{,\}/g, ',')
    .replace(/\\[,;:! ]/g, '')
    .replace(/\\(?:left|right)\b/g, '')
    .replace(/\^\s*\{?\\circ\}?/g, '')
    .replace(/\\%/g, '%')
    .replace(/\\\$|\$/g, '')
    .replace(/\u2212/g, '-');
}

/** The number an answer span states: the part after its last "=" if any ("x = 5"), then its first number. */
function spanNumber(content: string): Rational | null {
  const plain = stripLatex(content);
  const eq = plain.lastIndexOf('=');
  const tail = eq >= 0 ? plain.slice(eq + 1) : plain;
  return parseNumber(tail) ?? (eq >= 0 ? parseNumber(plain) : null);
}

/** The last complete \boxed{...} that states a number, or null. */
export function lastBoxedAnswer(text: string): { value: Rational; span: BoxedSpan } | null {
  const spans = findBoxed(text);
  for (let i = spans.length - 1; i >= 0; i--) {
    const value = spanNumber(spans[i].content);
    if (value) return { value, span: spans[i] };
  }
  return null;
}

/** The first complete \boxed{...} that states a number (where a generation may stop), or null. */
export function firstBoxedAnswer(text: string): { value: Rational; span: BoxedSpan } | null {
  for (const span of findBoxed(text)) {
    const value = spanNumber(span.content);
    if (value) return { value, span };
  }
  return null;
}

/** True when the text holds a complete \boxed{...} with non-empty content (the format reward's test). */
export function hasBoxed(text: string): boolean {
  return findBoxed(text).some((s) => s.content.trim() !== '');
}

function hashAnswer(text: string): { value: Rational; raw: string } | null {
  // "#### 18" as in GSM8K; a markdown heading ("#### Step 2") does not start with a number and is skipped.
  const re = /####[ \t]*([^\n]*)/g;
  let last: { value: Rational; raw: string } | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (!/^[-\u2212$\\\d.]/.test(m[1])) continue;
    const value = parseNumber(stripLatex(m[1]));
    if (value) last = { value, raw: m[1].trim() };
  }
  return last;
}

function answerTag(text: string): { value: Rational; raw: string } | null {
  const re = /<answer>([\s\S]*?)<\/answer>/gi;
  let last: { value: Rational; raw: string } | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const value = spanNumber(m[1]);
    if (value) last = { value, raw: m[1].trim() };
  }
  return last;
}

/** Exact value of the final answer in `text`, with where it came from; null when there is no number. */
export function extractAnswerValue(text: string): { value: Rational; source: AnswerSource; raw: string } | null {
  const boxed = lastBoxedAnswer(text);
  if (boxed) return { value: boxed.value, source: 'boxed', raw: boxed.span.content };
  const hash = hashAnswer(text);
  if (hash) return { ...hash, source: 'hash' };
  const tag = answerTag(text);
  if (tag) return { ...tag, source: 'answer-tag' };
  const numbers = findNumbers(stripLatex(text));
  const last = numbers[numbers.length - 1];
  return last ? { value: last.value, source: 'last-number', raw: last.text } : null;
}

/** The final answer of `text` as a canonical number string, with its source; null when there is none. */
export function extractAnswer(text: string): ExtractedAnswer | null {
  const found = extractAnswerValue(text);
  return found ? { value: formatRational(found.value), source: found.source, raw: found.raw } : null;
}

/**
 * True when the answer extracted from `completion` equals the ground truth `truth` (any number text:
 * "18", "1,234", "0.5", "$18.00"). False when either has no number.
 */
export function isCorrect(completion: string, truth: string): boolean {
  const expected = parseNumber(stripLatex(truth));
  if (!expected) return false;
  const got = extractAnswerValue(completion);
  return got !== null && rationalEquals(got.value, expected);
}
