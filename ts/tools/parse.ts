// Finding the tool calls in what the model wrote, in its family's format:
//   qwen:   <tool_call>\n{"name": "calculate", "arguments": {"expression": "2+3"}}\n</tool_call>   (any number)
//   llama3: {"name": "calculate", "parameters": {"expression": "2+3"}}   (the whole turn, optionally after
//           <|python_tag|>; Llama 3.1/3.2's JSON tool calling)
// A turn without a call ends the completion; a call that does not parse is reported, and the error goes
// back to the model as the tool result (the rollout goes on).
import type { ToolCall, ToolCallFormat } from './types.js';

export interface ParsedTurn {
  calls: ToolCall[];
  /** Set when the turn tried to call a tool but the call does not parse. */
  error?: string;
  /** The text of the call that did not parse (the error message can quote it when the budget allows). */
  badCall?: string;
}

const QWEN_CALL = /<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g;

function callFrom(json: string, argsKey: 'arguments' | 'parameters'): ToolCall | string {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    return `the tool call is not valid JSON (${(err as Error).message})`;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'a tool call must be a JSON object with "name" and "' + argsKey + '"';
  const o = v as Record<string, unknown>;
  const args = o[argsKey] ?? o.arguments ?? o.parameters ?? {};
  if (typeof o.name !== 'string' || o.name === '') return 'the tool call has no "name"';
  if (!args || typeof args !== 'object' || Array.isArray(args)) return `the "${argsKey}" of a tool call must be a JSON object`;
  return { name: o.name, arguments: args as Record<string, unknown> };
}

/** The tool calls in one assistant turn's text. */
export function parseToolCalls(text: string, format: ToolCallFormat): ParsedTurn {
  if (format === 'qwen') {
    const calls: ToolCall[] = [];
    for (const m of text.matchAll(QWEN_CALL)) {
      const c = callFrom(m[1], 'arguments');
      if (typeof c === 'string') return { calls, error: c, badCall: m[1].trim() };
      calls.push(c);
    }
    return { calls };
  }
  const body = text.replace(/^[\s\S]*?<\|python_tag\|>/, '').replace(/<\|eom_id\|>|<\|eot_id\|>/g, '').trim();
  if (!body.startsWith('{')) return { calls: [] };
  const c = callFrom(body, 'parameters');
  return typeof c === 'string' ? { calls: [], error: c, badCall: body } : { calls: [c] };
}

/** Where a turn that calls a tool ends: generation stops there so the tool can answer. */
export function toolCallStop(format: ToolCallFormat): string[] {
  return format === 'qwen' ? ['</tool_call>'] : ['<|eom_id|>'];
}
