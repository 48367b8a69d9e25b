// GSM8K records: {"question": ..., "answer": "<worked solution>\n#### <number>"}. The ground truth is the
// number after "####", normalised ("2,125" -> "2125"); the solution before it is kept for SFT targets.
import { normalizeNumber } from '../rewards/numbers.js';

export interface Gsm8kAnswer {
  /** Canonical number after "####" (commas removed, "18.00" -> "18"). */
  answer: string;
  /** The worked solution before the "####" line, trimmed. */
  solution: string;
}

/** Splits a GSM8K answer text; null when it has no "#### <number>" final line. */
export function parseGsm8kAnswer(text: string): Gsm8kAnswer | null {
  const at = text.lastIndexOf('####');
  if (at < 0) return null;
  const answer = normalizeNumber(text.slice(at + 4).replace(/[$]/g, ''));
  if (answer === null) return null;
  return { answer, solution: text.slice(0, at).trim() };
}

/** Removes GSM8K's calculator annotations: "16 - 3 = <<16-3=13>>13" -> "16 - 3 = 13". */
export function stripCalculatorAnnotations(text: string): string {
  return text.replace(/<<[^<>]*>>/g, '');
}

export interface BoxedSolutionOptions {
  /** Keep "<<a*b=c>>" calculator annotations (default false). */
  keepAnnotations?: boolean;
  /** The closing sentence; "{answer}" is replaced by the number. Default "The final answer is \\boxed{{answer}}." */
  closing?: string;
}

/**
 * A GSM8K answer rewritten as a completion in the recipe's format: the worked solution, then the answer in
 * \boxed{}; the SFT target for teaching a model the format. Null when the text has no "#### N" line.
 */
export function toBoxedSolution(answerText: string, options: BoxedSolutionOptions = {}): string | null {
  const parsed = parseGsm8kAnswer(answerText);
  if (!parsed) return null;
  const solution = options.keepAnnotations ? parsed.solution : stripCalculatorAnnotations(parsed.solution);
  const closing = (options.closing ?? 'The final answer is \\boxed{{answer}}.').replace('{answer}', parsed.answer);
  return solution ? `${solution}\n${closing}` : closing;
}
