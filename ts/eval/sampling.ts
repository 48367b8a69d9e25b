// Sampling for evaluation, with an optional early stop once a \boxed{...} answer is complete.
//
// Stop strings cannot express "the braces of \boxed{ are balanced", so generation runs in rounds:
//   - outside a box, the engine stops at the stop string "\boxed" (or "\fbox");
//   - inside an open box, it stops at every "}";
// after each round the decoded text is checked: once it holds a complete \boxed{...} with a number the
// sample is done and its text is cut just after that box's closing brace (post-truncation); otherwise it
// continues from its own tokens (prompt + everything generated so far) with the remaining token budget.
// Round 0 is one batched call with n samples per prompt (the prompt's KV is shared); continuation rounds
// give each unfinished sample its own request, seeded from (seed, round) so runs are reproducible (but a
// sample's continuation differs from what one uninterrupted sampling call would have produced). After
// MAX_ROUNDS rounds the rest is generated without stop strings and cut afterwards.
import type { GenerateOptions, GenerateResult, PromptInput } from '../model.js';
import { HayateError } from '../errors.js';
import { deriveSeed } from '../data/random.js';
import { firstBoxedAnswer } from '../rewards/extract.js';

/** What evaluation needs from a model (Model satisfies it). */
export interface EvalModel {
  generate(prompts: PromptInput[], options: GenerateOptions): Promise<GenerateResult>;
  readonly tokenizer: { decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string } | undefined;
}

export type SampleFinish = 'eos' | 'boxed' | 'length';

export interface Sample {
  text: string;
  /** Generated token ids (including any token past the box's closing brace). */
  tokens: number[];
  finish: SampleFinish;
}

export interface SampleOptions {
  n: number;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed: number;
  /** Stop a sample once its \boxed{...} answer is complete (default true). */
  stopAtBoxed?: boolean;
  maxBatch?: number;
  /** Sample with the model's attached LoRA adapters (true) or from the base model (false); left out, the model's default. */
  lora?: boolean;
  signal?: AbortSignal;
}

export const MAX_ROUNDS = 16;
const BOX_OPENERS = ['\\boxed', '\\fbox'];

/** True when the text ends inside a box: "\boxed", "\boxed{" or "\boxed{12" with unbalanced braces. */
export function endsInOpenBox(text: string): boolean {
  const at = Math.max(text.lastIndexOf('\\boxed'), text.lastIndexOf('\\fbox'));
  if (at < 0) return false;
  const rest = text.slice(at).replace(/^\\(?:boxed|fbox)\s*/, '');
  if (rest === '') return true;
  if (rest[0] !== '{') return false;
  let depth = 0;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '\\' && (rest[i + 1] === '{' || rest[i + 1] === '}')) {
      i++;
      continue;
    }
    if (rest[i] === '{') depth++;
    else if (rest[i] === '}' && --depth === 0) return false;
  }
  return true;
}

/** The text cut just after its first complete \boxed{...} that states a number (unchanged when it has none). */
export function truncateAfterBoxed(text: string): { text: string; boxed: boolean } {
  const first = firstBoxedAnswer(text);
  return first ? { text: text.slice(0, first.span.end), boxed: true } : { text, boxed: false };
}

interface Pending {
  prompt: number;
  sample: number;
  promptTokens: number[];
  tokens: number[];
  /** How the last call ended for this sample. */
  last: { finishReason: 'stop' | 'length'; stopString?: string };
}

/** n samples for each prompt; result[i][j] is sample j of prompt i. */
export async function sampleCompletions(model: EvalModel, prompts: PromptInput[], options: SampleOptions): Promise<Sample[][]> {
  const sampling: GenerateOptions = { temperature: options.temperature, topK: options.topK, topP: options.topP, minP: options.minP, maxBatch: options.maxBatch, signal: options.signal };
  if (options.lora !== undefined) sampling.lora = options.lora;
  const max = options.maxNewTokens;
  if (!(options.stopAtBoxed ?? true)) {
    const { results } = await model.generate(prompts, { ...sampling, n: options.n, maxNewTokens: max, seed: options.seed });
    return results.map((r) => r.completions.map((c) => ({ text: c.text, tokens: c.tokens, finish: c.finishReason === 'length' ? 'length' : 'eos' })));
  }
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new HayateError('ERR_TOKENIZER', 'evaluation needs the model tokenizer (tokenizer.json) to read completions');
  const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
  const out: Sample[][] = prompts.map(() => new Array<Sample>(options.n));

  const first = await model.generate(prompts, { ...sampling, n: options.n, maxNewTokens: max, seed: options.seed, stop: BOX_OPENERS });
  let pending: Pending[] = first.results.flatMap((r, i) =>
    r.completions.map((c, j) => ({ prompt: i, sample: j, promptTokens: r.promptTokens, tokens: c.tokens, last: c })),
  );
  for (let round = 1; pending.length > 0; round++) {
    const open: Pending[] = [];
    const closed: Pending[] = [];
    for (const p of pending) {
      // A shared call may run past this sample's own budget: what lies beyond it does not count.
      if (p.tokens.length > max) p.tokens = p.tokens.slice(0, max);
      const text = decode(p.tokens);
      let finish: SampleFinish | undefined;
      if (firstBoxedAnswer(text)) finish = 'boxed';
      else if (p.tokens.length >= max) finish = 'length';
      else if (p.last.stopString === undefined) finish = p.last.finishReason === 'length' ? 'length' : 'eos';
      if (finish !== undefined) {
        const cut = truncateAfterBoxed(text);
        out[p.prompt][p.sample] = { text: cut.text, tokens: p.tokens, finish: cut.boxed ? 'boxed' : finish };
      } else (endsInOpenBox(text) ? open : closed).push(p);
    }
    const final = round >= MAX_ROUNDS;
    const groups: [Pending[], string[]][] = final ? [[[...closed, ...open], []]] : [[closed, BOX_OPENERS], [open, ['}']]];
    for (const [g, [group, stop]] of groups.entries()) {
      if (group.length === 0) continue;
      const res = await model.generate(
        group.map((p) => ({ tokens: [...p.promptTokens, ...p.tokens] })),
        { ...sampling, n: 1, maxNewTokens: Math.max(...group.map((p) => max - p.tokens.length)), seed: deriveSeed(options.seed, round, g) >>> 1, stop },
      );
      res.results.forEach((r, i) => {
        const c = r.completions[0];
        group[i].tokens = [...group[i].tokens, ...c.tokens];
        group[i].last = c;
      });
    }
    pending = [...closed, ...open];
  }
  return out;
}
