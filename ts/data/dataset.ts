// Datasets of prompts with verifiable answers: GSM8K JSONL, or any JSONL with a field mapping. Each valid
// line becomes an Example; a line that does not parse or lacks a field is skipped (and reported) or is
// fatal, by option. An empty result is always an error.
import { normalizeNumber } from '../rewards/numbers.js';
import { DatasetError, formatIssue, type LineIssue, type OnInvalidLine } from './errors.js';
import { resolveDatasetPath } from './bundled.js';
import { parseGsm8kAnswer } from './gsm8k.js';
import { parseJsonl, readTextFile } from './jsonl.js';
import { buildPrompt, type ExamplePrompt, type PromptOptions } from './prompt.js';

export interface Example {
  /** Position in the dataset as loaded (0-based, skipped lines not counted), before any shuffling. */
  index: number;
  prompt: ExamplePrompt;
  /** The question without the instruction. */
  question: string;
  /** Ground truth: a canonical number ("18", "0.5") when the answer is numeric, else the trimmed text. */
  answer: string;
  /** The worked solution, when the source has one (GSM8K's text before "####"). */
  solution?: string;
  /** The original record. */
  raw: Record<string, unknown>;
  /** Where the record came from, for file datasets. */
  source?: { file: string; line: number };
}

export type DatasetFormat = 'gsm8k' | 'jsonl';

export interface LoadDatasetOptions extends PromptOptions {
  /** 'gsm8k' ({question, answer ending in "#### N"}, the default) or 'jsonl' (fields chosen below). */
  format?: DatasetFormat;
  /** jsonl: the prompt's field (dotted paths reach nested fields). Default 'prompt'. */
  promptField?: string;
  /** jsonl: the answer's field; a text with a "#### N" line gives N. Default 'answer'. */
  answerField?: string;
  /** Lines that do not parse: 'error' (default) fails the load, 'skip' drops them and reports them. */
  onInvalid?: OnInvalidLine;
  /** Called once per skipped line. */
  onWarning?: (issue: LineIssue) => void;
}

export interface LoadedDataset {
  file: string;
  examples: Example[];
  /** Lines skipped (onInvalid 'skip'); empty otherwise. */
  skipped: LineIssue[];
}

type Converted = { ok: true; example: Omit<Example, 'index' | 'prompt' | 'source'> } | { ok: false; message: string };

function field(record: Record<string, unknown>, path: string): unknown {
  let v: unknown = record;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function fromGsm8k(record: Record<string, unknown>): Converted {
  const { question, answer } = record;
  if (typeof question !== 'string' || question.trim() === '') return { ok: false, message: 'missing or empty string field "question"' };
  if (typeof answer !== 'string') return { ok: false, message: 'missing string field "answer"' };
  const parsed = parseGsm8kAnswer(answer);
  if (!parsed) return { ok: false, message: 'field "answer" has no final "#### <number>" line' };
  return { ok: true, example: { question: question.trim(), answer: parsed.answer, solution: parsed.solution, raw: record } };
}

function fromFields(record: Record<string, unknown>, promptField: string, answerField: string): Converted {
  const question = field(record, promptField);
  if (typeof question !== 'string' || question.trim() === '') return { ok: false, message: `missing or empty string field "${promptField}"` };
  const value = field(record, answerField);
  let answer: string;
  let solution: string | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) answer = normalizeNumber(String(value)) ?? String(value);
  else if (typeof value === 'string' && value.trim() !== '') {
    const gsm = value.includes('####') ? parseGsm8kAnswer(value) : null;
    if (gsm) {
      answer = gsm.answer;
      solution = gsm.solution;
    } else {
      const t = value.trim();
      // A bare number ("1,234", "$18.00", "-5") is canonicalised; any other text is kept as written.
      answer = /^[-\u2212]?\$?[\d,]*\.?\d+%?$/.test(t) ? (normalizeNumber(t.replace('$', '')) ?? t) : t;
    }
  } else return { ok: false, message: `missing field "${answerField}" (a number or a non-empty string)` };
  const example: Omit<Example, 'index' | 'prompt' | 'source'> = { question: question.trim(), answer, raw: record };
  if (solution !== undefined) example.solution = solution;
  return { ok: true, example };
}

/**
 * Examples from in-memory records (GSM8K-shaped by default, or field-mapped with format 'jsonl'). Every
 * record must be valid: an invalid one throws a DatasetError naming its index.
 */
export function examplesFromRecords(records: readonly Record<string, unknown>[], options: Omit<LoadDatasetOptions, 'onInvalid' | 'onWarning'> = {}): Example[] {
  const format = options.format ?? 'gsm8k';
  if (records.length === 0) throw new DatasetError('dataset is empty: no records given');
  return records.map((record, index) => {
    const c = convertRecord(record, format, options);
    if (!c.ok) throw new DatasetError(`record ${index}: ${c.message}`, [{ file: '<records>', line: index + 1, message: c.message }]);
    return { index, prompt: buildPrompt(c.example.question, options), ...c.example };
  });
}

function convertRecord(value: unknown, format: DatasetFormat, options: LoadDatasetOptions): Converted {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, message: 'expected a JSON object' };
  const record = value as Record<string, unknown>;
  return format === 'gsm8k' ? fromGsm8k(record) : fromFields(record, options.promptField ?? 'prompt', options.answerField ?? 'answer');
}

/** Builds a dataset from already-read JSONL text (`file` names it in messages). */
export function datasetFromJsonl(text: string, file: string, options: LoadDatasetOptions = {}): LoadedDataset {
  const format = options.format ?? 'gsm8k';
  if (format !== 'gsm8k' && format !== 'jsonl') throw new DatasetError(`unknown dataset format '${String(format)}' (expected gsm8k or jsonl)`);
  const onInvalid = options.onInvalid ?? 'error';
  const { rows, issues: jsonIssues } = parseJsonl(text, file);
  const issues: LineIssue[] = [...jsonIssues];
  const examples: Example[] = [];
  for (const row of rows) {
    const c = convertRecord(row.value, format, options);
    if (!c.ok) {
      issues.push({ file, line: row.line, message: c.message });
      continue;
    }
    examples.push({ index: 0, prompt: buildPrompt(c.example.question, options), ...c.example, source: { file, line: row.line } });
  }
  issues.sort((a, b) => a.line - b.line);
  if (issues.length > 0 && onInvalid === 'error') {
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more invalid line${issues.length > 2 ? 's' : ''})` : '';
    throw new DatasetError(`${formatIssue(issues[0])}${more}; fix the file or skip invalid lines (onInvalid: 'skip', CLI --skip-invalid)`, issues);
  }
  if (examples.length === 0) {
    const why = issues.length > 0 ? `all ${issues.length} lines are invalid (first: ${formatIssue(issues[0])})` : 'the file has no records';
    throw new DatasetError(`dataset ${file} is empty: ${why}`, issues);
  }
  examples.forEach((e, i) => (e.index = i));
  for (const issue of issues) options.onWarning?.(issue);
  return { file, examples, skipped: issues };
}

/** Loads a GSM8K-style or field-mapped JSONL file, or a bundled data set by name (`gsm8k`, `gsm8k:test`). */
export async function loadDataset(path: string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  const file = resolveDatasetPath(path);
  return datasetFromJsonl(await readTextFile(file, 'dataset file'), file, options);
}
