// Prompts: the question plus the recipe's instruction, as plain text or as chat messages, and rendering of
// chat messages to text with a model's chat template.
import type { ChatMessage, ChatTemplateOptions, HfTokenizer } from '../tokenizer.js';

/** The reference recipe's instruction, appended to every question (on its own line). */
export const DEFAULT_INSTRUCTION = 'Please reason step by step, and put your final answer within \\boxed{}.';

/** A prompt as Model.generate accepts it: plain text, or chat messages the model's template renders. */
export type ExamplePrompt = string | { messages: ChatMessage[] };

export interface PromptOptions {
  /** Appended after the question on a new line; null or '' for none. Default: DEFAULT_INSTRUCTION. */
  instruction?: string | null;
  /** Produce { messages } (a user turn) instead of plain text. Default false. */
  chat?: boolean;
  /** A system turn before the user turn (chat prompts only). */
  systemPrompt?: string;
}

/** The prompt for one question. */
export function buildPrompt(question: string, options: PromptOptions = {}): ExamplePrompt {
  const instruction = options.instruction === undefined ? DEFAULT_INSTRUCTION : options.instruction;
  const text = instruction ? `${question.trim()}\n${instruction}` : question.trim();
  if (!options.chat) return text;
  const messages: ChatMessage[] = [];
  if (options.systemPrompt) messages.push({ role: 'system', content: options.systemPrompt });
  messages.push({ role: 'user', content: text });
  return { messages };
}

/**
 * The text a model sees for a prompt: plain text as is, chat messages rendered with the tokenizer's chat
 * template and the assistant header (encode the result without adding special tokens again).
 */
export function renderPrompt(prompt: ExamplePrompt, tokenizer: Pick<HfTokenizer, 'applyChatTemplate'>, options: Omit<ChatTemplateOptions, 'addGenerationPrompt'> = {}): string {
  if (typeof prompt === 'string') return prompt;
  return tokenizer.applyChatTemplate(prompt.messages, { ...options, addGenerationPrompt: true });
}
