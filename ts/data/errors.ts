// Dataset errors: a line that does not parse or lacks a field is a LineIssue (file:line + reason); when
// such lines are fatal, or when nothing usable is left, loading throws a DatasetError that lists them.
import { HayateError } from '../errors.js';

export interface LineIssue {
  file: string;
  /** 1-based line number. */
  line: number;
  message: string;
}

/** What to do with a line that does not parse: skip it (counted and reported) or fail the load. */
export type OnInvalidLine = 'skip' | 'error';

export function formatIssue(issue: LineIssue): string {
  return `${issue.file}:${issue.line}: ${issue.message}`;
}

export class DatasetError extends HayateError {
  readonly issues: LineIssue[];
  constructor(message: string, issues: LineIssue[] = [], options?: { cause?: unknown }) {
    super('ERR_INVALID_ARGUMENT', message, options);
    this.name = 'DatasetError';
    this.issues = issues;
  }
}
