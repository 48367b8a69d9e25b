// Tools for multi-turn rollouts: types, loading from a module, call parsing, the runner, conversations.
export type { JsonSchema, Tool, ToolCall, ToolCallFormat } from './types.js';
export { toolDefinition } from './types.js';
export { loadToolsModule, validateTools } from './load.js';
export { parseToolCalls, toolCallStop } from './parse.js';
export type { ParsedTurn } from './parse.js';
export { ToolRunner } from './runner.js';
export type { ToolOutcome } from './runner.js';
export { Conversation, plainToolPreamble, toolCallFormat } from './conversation.js';
