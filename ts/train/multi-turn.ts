// Multi-turn rollouts (agentic GRPO): a completion may call tools and talk to an environment over several
// turns, inside one generation call that keeps each sequence's KV cache (Model.generate's onTurn: only the
// appended tokens are prefilled). After each assistant turn:
//   - a tool call (parse.ts) runs in the ToolRunner under its time limit; its answer (or the error) is
//     appended as a tool message through the chat template, and the model continues;
//   - with an environment and no tool call, environment.step(text) answers: its reward adds up, its
//     messages are appended unless it is done;
//   - otherwise the completion ends.
// Up to maxToolCallingIterations tool calls per completion (TRL's max_tool_calling_iterations); appended
// text that would pass maxCompletionLength ends the completion instead (TRL rolls such a result back).
// The appended tokens are context: the completion's mask marks them 0, so they carry no loss.
import type { Example } from '../data/dataset.js';
import { HayateError } from '../errors.js';
import type { Completion, Model } from '../model.js';
import type { ChatMessage, HfTokenizer } from '../tokenizer.js';
import { Conversation, toolCallFormat, type ConversationPrompt } from '../tools/conversation.js';
import { importUserModule } from '../tools/load.js';
import { parseToolCalls, toolCallStop } from '../tools/parse.js';
import { ToolRunner } from '../tools/runner.js';
import type { Tool, ToolCallFormat } from '../tools/types.js';

/** What an environment's step returns: messages to show next, a reward to add, whether the episode is over. */
export interface EnvironmentStep {
  messages?: string | ChatMessage[];
  reward?: number;
  done?: boolean;
}

/** A multi-turn task where the world answers (a game, a simulated user). */
export interface Environment {
  /**
   * The conversation to start from (default: the example's prompt). Synchronous (the batch's generation is
   * queued at once), and the same for every sample of an example (they share the prompt's prefill).
   */
  reset?(): string | ChatMessage[] | undefined;
  /** The world's answer to one assistant turn. */
  step(assistantText: string): EnvironmentStep | Promise<EnvironmentStep>;
}

/** One environment per sample: called for each of the G completions of an example. */
export type EnvironmentFactory = (example: Example) => Environment;

export interface MultiTurnConfig {
  tools: readonly Tool[];
  environment?: EnvironmentFactory;
  maxToolCallingIterations: number;
  toolTimeoutMs: number;
}

/** One completion's episode. */
export interface Episode {
  toolCalls: number;
  toolFailures: number;
  /** Assistant turns. */
  turns: number;
  toolSeconds: number;
  /** Sum of the environment's rewards (0 without one, or when it failed). */
  environmentReward: number;
  /** Set when the environment threw: the episode ended there with reward 0. */
  environmentError?: string;
}

function asMessages(v: string | ChatMessage[], role = 'user'): ChatMessage[] {
  return typeof v === 'string' ? [{ role, content: v }] : v;
}

/** The multi-turn side of one rollout batch: prompt encoding, the onTurn answers and the episodes' record. */
export class MultiTurnBatch {
  readonly format: ToolCallFormat;
  private readonly runner: ToolRunner;
  private readonly tokenizer: HfTokenizer | undefined;
  private readonly conversations = new Map<number, Conversation>();
  private readonly environments = new Map<number, Environment>();
  private readonly lengths = new Map<number, number>();
  readonly episodes: Episode[];
  warnings: string[] = [];

  constructor(
    private readonly model: Model,
    private readonly config: MultiTurnConfig,
    private readonly examples: readonly Example[],
    private readonly numGenerations: number,
    private readonly maxCompletionLength: number,
  ) {
    this.tokenizer = model.tokenizer;
    this.format = toolCallFormat(this.tokenizer);
    this.runner = new ToolRunner(config.tools, config.toolTimeoutMs);
    this.episodes = Array.from({ length: examples.length * numGenerations }, () => ({ toolCalls: 0, toolFailures: 0, turns: 0, toolSeconds: 0, environmentReward: 0 }));
  }

  /** Stop strings that end a turn which calls a tool (the model's EOS ends the others). */
  stops(): string[] {
    return this.config.tools.length > 0 ? toolCallStop(this.format) : [];
  }

  /** The prompt tokens of example `i` (tools shown; an environment's reset conversation when it has one). */
  promptTokens(i: number): number[] {
    const prompt = this.startingPrompt(i);
    const text = this.conversation(i * this.numGenerations, prompt).promptText();
    return this.encode(text);
  }

  private startingPrompt(i: number): ConversationPrompt {
    const example = this.examples[i];
    let prompt = example.prompt as ConversationPrompt;
    if (this.config.environment) {
      // one environment per sample; sample 0's reset gives the prompt every sample shares
      for (let j = 0; j < this.numGenerations; j++) {
        const env = this.config.environment(example);
        this.environments.set(i * this.numGenerations + j, env);
        const start = env.reset?.();
        if (j === 0 && start !== undefined) prompt = typeof start === 'string' ? start : { messages: start };
      }
    }
    for (let j = 0; j < this.numGenerations; j++) this.conversation(i * this.numGenerations + j, prompt);
    return prompt;
  }

  private conversation(key: number, prompt?: ConversationPrompt): Conversation {
    let c = this.conversations.get(key);
    if (!c) this.conversations.set(key, (c = new Conversation(prompt as ConversationPrompt, this.config.tools, this.tokenizer)));
    return c;
  }

  private encode(text: string): number[] {
    if (!this.tokenizer) throw new Error('multi-turn rollouts need the model to have a tokenizer (tokenizer.json)');
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /**
   * The answer to one assistant turn of sample `sample` of prompt `request`: the tokens to append (the
   * model continues), or null (the completion ends). Never throws: failures go back to the model as text
   * or end the episode, and are counted.
   */
  async onTurn(turn: { request: number; sample: number; tokens: readonly number[]; text?: string; maxAppendTokens?: number }): Promise<number[] | null> {
    const key = turn.request * this.numGenerations + turn.sample;
    if (!this.conversations.has(key)) this.startingPrompt(turn.request); // (promptTokens normally did)
    const episode = this.episodes[key];
    episode.turns++;
    const length = (this.lengths.get(key) ?? 0) + turn.tokens.length;
    this.lengths.set(key, length);
    const raw = this.tokenizer ? this.tokenizer.decode(Array.from(turn.tokens), { skipSpecialTokens: false }) : (turn.text ?? '');
    const eos = this.endOfTurnText(raw);
    const text = eos ? raw.slice(0, raw.length - eos.length) : raw;
    const followUps: ChatMessage[] = [];
    let quoted: { message: ChatMessage; full: string } | undefined;
    const parsed = this.config.tools.length > 0 ? parseToolCalls(text, this.format) : { calls: [] };
    if (parsed.calls.length > 0 || parsed.error !== undefined) {
      if (episode.toolCalls >= this.config.maxToolCallingIterations) return null;
      if (parsed.error !== undefined) {
        episode.toolCalls++;
        episode.toolFailures++;
        followUps.push({ role: 'tool', content: `error: ${parsed.error}` });
        // quote the call back when it fits in the budget (below), so the model sees what it wrote
        if (parsed.badCall) quoted = { message: followUps[0], full: `error: ${parsed.error}: ${parsed.badCall.slice(0, 200)}` };
      }
      for (const call of parsed.calls) {
        if (episode.toolCalls >= this.config.maxToolCallingIterations) break;
        episode.toolCalls++;
        const outcome = await this.runner.run(call);
        episode.toolSeconds += outcome.seconds;
        if (!outcome.ok) episode.toolFailures++;
        followUps.push({ role: 'tool', name: call.name, content: outcome.content });
      }
    } else if (this.environments.has(key) && episode.environmentError === undefined) {
      let step: EnvironmentStep;
      try {
        step = await (this.environments.get(key) as Environment).step(text);
      } catch (err) {
        episode.environmentError = (err as Error)?.message ?? String(err);
        episode.environmentReward = 0;
        this.warnings.push(`environment failed on prompt ${turn.request}, sample ${turn.sample}: ${episode.environmentError} (the episode ends with reward 0)`);
        return null;
      }
      if (typeof step?.reward === 'number' && Number.isFinite(step.reward)) episode.environmentReward += step.reward;
      if (step?.done || step?.messages === undefined) return null;
      followUps.push(...asMessages(step.messages));
    } else {
      return null;
    }
    // no room left for the answer and a reply after it: end here (TRL rolls such an answer back)
    const room = Math.min(turn.maxAppendTokens ?? Infinity, this.maxCompletionLength - length - 1);
    let tokens = this.appendedTokens(key, text, eos, followUps);
    if (quoted) {
      const short = quoted.message.content;
      quoted.message.content = quoted.full;
      const withCall = this.appendedTokens(key, text, eos, followUps);
      if (withCall.length <= room) tokens = withCall;
      else quoted.message.content = short;
    }
    if (tokens.length > room) return null;
    this.conversation(key).record(text, followUps);
    this.lengths.set(key, length + tokens.length);
    return tokens;
  }

  /** The tokens that append `followUps` after the assistant turn `text` of conversation `key`. */
  private appendedTokens(key: number, text: string, eos: string | undefined, followUps: ChatMessage[]): number[] {
    let appended = this.conversation(key).appendAfter(text, followUps);
    if (eos && appended.startsWith(eos)) appended = appended.slice(eos.length); // the model already closed its turn
    return this.encode(appended);
  }

  /**
   * What the rewards score of a multi-turn completion: the model's last turn, the tokens after the last
   * appended message (its answer; the whole completion when nothing was appended). The sampling `stops`
   * that ended it are cut as in a single-turn completion; a tool call's stop stays (`...</tool_call>`).
   */
  answerText(c: Completion, stops: readonly string[]): string {
    const mask = c.modelTokenMask;
    if (!mask || !this.tokenizer) return c.text;
    let start = mask.length;
    while (start > 0 && mask[start - 1]) start--;
    let text = this.tokenizer.decode(c.tokens.slice(start), { skipSpecialTokens: true });
    if (c.stopString !== undefined && stops.includes(c.stopString) && text.endsWith(c.stopString)) text = text.slice(0, -c.stopString.length);
    return text;
  }

  /** The end-of-turn marker the raw text ends with (Qwen's <|im_end|>, Llama's <|eot_id|>), if any. */
  private endOfTurnText(raw: string): string | undefined {
    return ['<|im_end|>', '<|eot_id|>', '<|endoftext|>', '<|eom_id|>'].find((m) => raw.endsWith(m));
  }
}

/** The environment factory a module exports (`hayate train --environment FILE.js`): `environment` or its default export. */
export async function loadEnvironmentModule(path: string): Promise<EnvironmentFactory> {
  const mod = await importUserModule(path, 'environment');
  const factory = mod.environment ?? mod.default;
  if (typeof factory !== 'function') throw new HayateError('ERR_INVALID_ARGUMENT', `environment module ${path} must export a function \`environment\` (or a default export): (example) => ({ reset?(), step(text) })`);
  return factory as EnvironmentFactory;
}
