// One multi-turn completion as text the model reads: its prompt with the tools shown, and what gets
// appended after each assistant turn (a tool's answer, an environment's message) up to the next
// assistant header. With chat messages and a chat template, everything goes through the model's own
// template (`tools` passed to it, tool results as `tool` messages); plain-text prompts get a plain format:
//   prompt:  "<tool list>\n\n<prompt>"      tool answer: "\n<tool_response>\n<result>\n</tool_response>\n"
import type { ChatMessage, HfTokenizer } from '../tokenizer.js';
import { toolDefinition, type Tool, type ToolCallFormat } from './types.js';

export type ConversationPrompt = string | { messages: ChatMessage[] };

/** The family's call format, guessed from the chat template (Qwen's `<tool_call>`; Llama 3's ipython role). */
export function toolCallFormat(tokenizer: HfTokenizer | undefined): ToolCallFormat {
  const t = tokenizer?.chatTemplate ?? '';
  return /<\|python_tag\|>|ipython|<\|eom_id\|>/.test(t) && !t.includes('<tool_call>') ? 'llama3' : 'qwen';
}

/** How plain-text prompts show the tools (chat prompts use the template's own rendering). */
export function plainToolPreamble(tools: readonly Tool[]): string {
  const lines = tools.map((t) => `- ${t.name}: ${t.description ?? ''} arguments: ${JSON.stringify(t.parameters ?? {})}`);
  return `You may call these tools:\n${lines.join('\n')}\nCall one as <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call> and wait for its <tool_response>.`;
}

export class Conversation {
  private readonly messages: ChatMessage[] | undefined;

  constructor(
    private readonly prompt: ConversationPrompt,
    private readonly tools: readonly Tool[],
    private readonly tokenizer: HfTokenizer | undefined,
  ) {
    this.messages = typeof prompt === 'string' || this.tokenizer?.chatTemplate === undefined ? undefined : [...prompt.messages];
  }

  private get chat(): boolean {
    return this.messages !== undefined;
  }

  private render(messages: ChatMessage[]): string {
    const extra = this.tools.length > 0 ? { tools: this.tools.map(toolDefinition) } : undefined;
    return (this.tokenizer as HfTokenizer).applyChatTemplate(messages, { addGenerationPrompt: true, extra });
  }

  /** The prompt text the first turn continues. */
  promptText(): string {
    if (this.chat) return this.render(this.messages as ChatMessage[]);
    const text = typeof this.prompt === 'string' ? this.prompt : this.prompt.messages.map((m) => m.content).join('\n');
    return this.tools.length > 0 ? `${plainToolPreamble(this.tools)}\n\n${text}` : text;
  }

  /**
   * The text to append after an assistant turn `assistantText` (as generated, stop string included) so that
   * `followUps` (tool answers, environment messages) come next and the model continues as the assistant.
   */
  appendAfter(assistantText: string, followUps: ChatMessage[]): string {
    if (!this.chat) {
      return followUps.map((m) => (m.role === 'tool' ? `\n<tool_response>\n${m.content}\n</tool_response>\n` : `\n${m.content}\n`)).join('');
    }
    const full = this.render([...(this.messages as ChatMessage[]), { role: 'assistant', content: assistantText }, ...followUps]);
    // the template renders earlier turns verbatim; what follows the assistant's text is the appended part
    const at = full.lastIndexOf(assistantText);
    if (at >= 0) return full.slice(at + assistantText.length);
    // a template that rewrites the assistant turn: the family's literal format
    const answers = followUps.map((m) => (m.role === 'tool' ? `<|im_start|>user\n<tool_response>\n${m.content}\n</tool_response><|im_end|>\n` : `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`));
    return `<|im_end|>\n${answers.join('')}<|im_start|>assistant\n`;
  }

  /** Makes the turn and its follow-ups part of the conversation (once the model continues after them). */
  record(assistantText: string, followUps: ChatMessage[]): void {
    this.messages?.push({ role: 'assistant', content: assistantText }, ...followUps);
  }
}

/**
 * Whether the tokenizer's chat template shows `tools` in the prompt: some templates ignore the argument,
 * and a model that never sees the tool list can only call tools it learned by heart.
 */
export function chatTemplateShowsTools(tokenizer: HfTokenizer, tools: readonly Tool[]): boolean {
  if (tools.length === 0 || tokenizer.chatTemplate === undefined) return true;
  const messages: ChatMessage[] = [{ role: 'user', content: 'hello' }];
  const without = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  const withTools = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { tools: tools.map(toolDefinition) } });
  return withTools !== without;
}
