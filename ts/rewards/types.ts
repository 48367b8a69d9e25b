// Reward function types and the check every reward output goes through.
import type { ChatMessage } from '../tokenizer.js';

/** A prompt as the trainer holds it: text, or chat messages. */
export type RewardPrompt = string | { messages: ChatMessage[] };

/**
 * Per-completion data given to every reward. Arrays are aligned with `completions` (one entry per
 * completion, the prompt's data repeated for each of its G completions), as in TRL.
 */
export interface RewardExtra {
  /** Ground-truth answers (needed by the correctness reward). */
  answers?: string[];
  /** Completion lengths in tokens (the length rewards fall back to characters without them). */
  completionLengths?: number[];
  /** Completion token ids (the trainer passes them, as TRL's completion_ids). */
  completionIds?: number[][];
  /**
   * Multi-turn rollouts (tools, environments): the whole conversation each completion holds, every assistant
   * turn with the tool and environment messages between them. `completions` then holds only the model's last
   * turn (its answer), and completionLengths/completionIds count the model's own tokens.
   */
  transcripts?: string[];
  [key: string]: unknown;
}

/** A reward: one finite number per completion. */
export type RewardFunction = (prompts: RewardPrompt[], completions: string[], extra: RewardExtra) => number[] | Promise<number[]>;

export type RewardFailureKind = 'error' | 'timeout' | 'wrong-length' | 'not-a-number' | 'not-an-array';

export type RewardOutcome = { ok: true; values: number[] } | { ok: false; kind: RewardFailureKind; message: string };

/** Checks a reward's output: an array (or typed array) of `expected` finite numbers. */
export function checkRewardOutput(output: unknown, expected: number): RewardOutcome {
  if (!Array.isArray(output) && !(ArrayBuffer.isView(output) && !(output instanceof DataView))) {
    return { ok: false, kind: 'not-an-array', message: `returned ${output === null ? 'null' : typeof output}, not an array of numbers` };
  }
  const values = Array.from(output as ArrayLike<unknown>);
  if (values.length !== expected) return { ok: false, kind: 'wrong-length', message: `returned ${values.length} values for ${expected} completions` };
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      return { ok: false, kind: 'not-a-number', message: `value ${i} is ${typeof v === 'number' ? String(v) : typeof v}, not a finite number` };
    }
  }
  return { ok: true, values: values as number[] };
}
