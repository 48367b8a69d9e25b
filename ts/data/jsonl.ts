// JSONL reading: one JSON value per line, blank lines ignored, every line that does not parse reported
// with its file and line number.
import { readFile } from 'node:fs/promises';
import { HayateError } from '../errors.js';
import type { LineIssue } from './errors.js';

export interface JsonlRow {
  /** 1-based line number. */
  line: number;
  value: unknown;
}

export interface JsonlContents {
  rows: JsonlRow[];
  /** Lines that are not valid JSON. */
  issues: LineIssue[];
}

/** Reads a whole file as text, with typed errors for a missing or unreadable file. */
export async function readTextFile(path: string, what = 'file'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HayateError('ERR_NOT_FOUND', `${what} not found: ${path}`, { cause: err });
    if (code === 'EISDIR') throw new HayateError('ERR_INVALID_ARGUMENT', `${what} is a directory, not a file: ${path}`, { cause: err });
    throw new HayateError('ERR_IO', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Parses JSONL text; `file` only names the source in issues. */
export function parseJsonl(text: string, file: string): JsonlContents {
  const rows: JsonlRow[] = [];
  const issues: LineIssue[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line.trim() === '') continue;
    try {
      rows.push({ line: i + 1, value: JSON.parse(i === 0 ? line.replace(/^\uFEFF/, '') : line) });
    } catch (err) {
      issues.push({ file, line: i + 1, message: `not valid JSON (${(err as Error).message})` });
    }
  }
  return { rows, issues };
}

export async function readJsonl(path: string): Promise<JsonlContents> {
  return parseJsonl(await readTextFile(path, 'dataset file'), path);
}
