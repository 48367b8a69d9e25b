// A tool the model can call during a rollout: a JavaScript function and the JSON-schema description the
// chat template shows the model (OpenAI's function format, which Qwen2.5/Qwen3 and Llama 3.x templates
// render). Library users pass Tool objects; `hayate train --tools FILE.js` loads them from a module
// (load.ts documents the module's shape).

/** JSON schema of a tool's arguments (an object schema). */
export type JsonSchema = Record<string, unknown>;

export interface Tool {
  /** The name the model calls (letters, digits, _ and -). */
  name: string;
  description?: string;
  /** JSON schema of the arguments object. */
  parameters?: JsonSchema;
  /**
   * Runs the call. Its result goes back to the model as the tool message: strings as they are, anything
   * else as JSON. A throw (or a result with no JSON form) sends the error message back instead and counts
   * as a failure. `signal` aborts when the call runs past its time limit.
   */
  fn: (args: Record<string, unknown>, context: { signal: AbortSignal }) => unknown;
}

/** A parsed call: the tool's name and its arguments. */
export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** How the model writes calls: Qwen's `<tool_call>{json}</tool_call>` or Llama 3.x's bare JSON object. */
export type ToolCallFormat = 'qwen' | 'llama3';

/** The chat-template form of a tool (`tools` argument of apply_chat_template). */
export function toolDefinition(t: Tool): Record<string, unknown> {
  return { type: 'function', function: { name: t.name, description: t.description ?? '', parameters: t.parameters ?? { type: 'object', properties: {} } } };
}
