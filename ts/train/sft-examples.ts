// SFT examples → token sequences. An example is a dataset Example (prompt + its worked solution ending in
// \boxed{answer}, the recipe's format), a text pair (prompt + completion text) or token ids. Completions end
// with the EOS token (so the model learns to stop) and are cut to fit the length limit.
import type { Example } from '../data/dataset.js';
import { stripCalculatorAnnotations, toBoxedSolution } from '../data/gsm8k.js';
import { HayateError } from '../errors.js';
import type { Model, PromptInput } from '../model.js';
import { SFT_DEFAULTS } from '../training-defaults.js';

/** A prompt and the completion to learn, as text (the prompt may be chat messages or token ids). */
export interface SftTextExample {
  prompt: PromptInput;
  completion: string;
}

/** A prompt and its completion as token ids (used as given: no EOS is appended). */
export interface SftTokenExample {
  promptTokens: ArrayLike<number>;
  completionTokens: ArrayLike<number>;
}

export type SftExample = Example | SftTextExample | SftTokenExample;

export interface EncodedSftExample {
  prompt: number[];
  completion: number[];
}

/** The completion an Example teaches: its worked solution then "The final answer is \boxed{N}." */
export function sftTargetText(e: Example): string {
  const rawAnswer = e.raw?.answer;
  if (typeof rawAnswer === 'string' && rawAnswer.includes('####')) {
    const boxed = toBoxedSolution(rawAnswer);
    if (boxed !== null) return boxed;
  }
  const closing = `The final answer is \\boxed{${e.answer}}.`;
  return e.solution ? `${stripCalculatorAnnotations(e.solution)}\n${closing}` : closing;
}

function isTokenExample(x: SftExample): x is SftTokenExample {
  return typeof x === 'object' && x !== null && 'promptTokens' in x && 'completionTokens' in x;
}

function isTextExample(x: SftExample): x is SftTextExample {
  return typeof x === 'object' && x !== null && 'completion' in x && typeof (x as SftTextExample).completion === 'string';
}

function isDatasetExample(x: SftExample): x is Example {
  return typeof x === 'object' && x !== null && 'question' in x && 'answer' in x && 'prompt' in x;
}

function checkIds(ids: ArrayLike<number>, vocab: number, what: string): number[] {
  const out = Array.from(ids);
  for (const id of out) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new HayateError('ERR_INVALID_ARGUMENT', `${what}: token id ${id} is outside the vocabulary [0, ${vocab})`);
  }
  return out;
}

export interface EncodeSftOptions {
  /** Append the EOS token to text completions (default true). */
  appendEos?: boolean;
  /** Longest prompt + completion in tokens (default: the model's context); longer completions are cut. */
  maxLength?: number;
}

/** Token sequences of the examples; also returns how many completions were cut to fit maxLength. */
export function encodeSftExamples(model: Model, examples: readonly SftExample[], options: EncodeSftOptions = {}): { sequences: EncodedSftExample[]; truncated: number } {
  const vocab = model.info.vocabSize;
  const maxLength = options.maxLength ?? model.info.maxPositionEmbeddings;
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new HayateError('ERR_INVALID_ARGUMENT', `maxLength must be an integer >= 2, got ${maxLength}`);
  const appendEos = options.appendEos ?? SFT_DEFAULTS.appendEos;
  const eos = model.tokenizer?.eosTokenIds[0] ?? model.info.eosTokenIds[0];
  let truncated = 0;
  const sequences = examples.map((x, i) => {
    let prompt: number[];
    let completion: number[];
    if (isTokenExample(x)) {
      prompt = checkIds(x.promptTokens, vocab, `example ${i} prompt`);
      completion = checkIds(x.completionTokens, vocab, `example ${i} completion`);
    } else {
      let text: string;
      let p: PromptInput;
      if (isTextExample(x)) {
        p = x.prompt;
        text = x.completion;
      } else if (isDatasetExample(x)) {
        p = x.prompt;
        text = sftTargetText(x);
      } else {
        throw new HayateError('ERR_INVALID_ARGUMENT', `example ${i} is neither a dataset example, a {prompt, completion} pair nor {promptTokens, completionTokens}`);
      }
      prompt = model.encodePrompt(p);
      if (!model.tokenizer) throw new HayateError('ERR_TOKENIZER', `${model.dir} has no tokenizer.json: give SFT examples as token ids`);
      completion = model.tokenizer.encode(text, { addSpecialTokens: false });
      if (appendEos && eos !== undefined) completion.push(eos);
    }
    if (prompt.length < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `example ${i}: the prompt has no tokens`);
    if (completion.length < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `example ${i}: the completion has no tokens`);
    if (prompt.length >= maxLength) throw new HayateError('ERR_INVALID_ARGUMENT', `example ${i}: the prompt has ${prompt.length} tokens, not below the length limit ${maxLength}`);
    if (prompt.length + completion.length > maxLength) {
      completion = completion.slice(0, maxLength - prompt.length);
      truncated++;
    }
    return { prompt, completion };
  });
  return { sequences, truncated };
}
