// Tools for multi-turn rollouts without the engine: call parsing in both families' formats, the runner's
// answers for every failure (unknown tool, throw, time-out, no JSON form, malformed call), tools from a
// module, the real Qwen3 chat template rendering tools and tool results, and MultiTurnBatch answering
// scripted assistant turns (tool calls, max_tool_calling_iterations, the token budget, environments).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../ts/model.js';
import type { HfTokenizer } from '../ts/tokenizer.js';
import { chatTemplateShowsTools } from '../ts/tools/conversation.js';
import { Conversation, loadToolsModule, parseToolCalls, ToolRunner, toolCallFormat, validateTools, type Tool } from '../ts/tools/index.js';
import { MultiTurnBatch, type Environment } from '../ts/train/multi-turn.js';
import { calculate, evaluateArithmetic } from '../examples/calculator-tool/tools.js';
import { cleanupTempDirs, loadQwen3Tokenizer, tempDir } from './helpers.js';

let tok: HfTokenizer;
const calc: Tool = { name: 'calculate', description: calculate.schema.description, parameters: calculate.schema.parameters, fn: calculate as unknown as Tool['fn'] };

beforeAll(async () => {
  tok = await loadQwen3Tokenizer();
});
afterAll(cleanupTempDirs);

describe('tool calls', () => {
  it('parse in the Qwen format: one or more calls, malformed ones reported', () => {
    expect(parseToolCalls('Let me compute.\n<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>', 'qwen')).toEqual({
      calls: [{ name: 'calculate', arguments: { expression: '6*7' } }],
    });
    expect(parseToolCalls('<tool_call>{"name":"a","arguments":{}}</tool_call><tool_call>{"name":"b","arguments":{"x":1}}</tool_call>', 'qwen').calls.map((c) => c.name)).toEqual(['a', 'b']);
    expect(parseToolCalls('The answer is \\boxed{42}.', 'qwen')).toEqual({ calls: [] });
    expect(parseToolCalls('<tool_call>{"name": "calculate", "arguments": {oops}}</tool_call>', 'qwen').error).toMatch(/not valid JSON/);
    expect(parseToolCalls('<tool_call>{"arguments": {}}</tool_call>', 'qwen').error).toMatch(/no "name"/);
    expect(parseToolCalls('<tool_call>{"name": "x", "arguments": [1]}</tool_call>', 'qwen').error).toMatch(/must be a JSON object/);
    // a call cut by the token budget (no closing tag) still parses if its JSON is whole
    expect(parseToolCalls('<tool_call>{"name":"a","arguments":{}}', 'qwen').calls).toHaveLength(1);
  });

  it('parse in the Llama 3 JSON format', () => {
    expect(parseToolCalls('<|python_tag|>{"name": "calculate", "parameters": {"expression": "1+1"}}<|eom_id|>', 'llama3').calls).toEqual([{ name: 'calculate', arguments: { expression: '1+1' } }]);
    expect(parseToolCalls('{"name": "calculate", "parameters": {"expression": "2"}}', 'llama3').calls).toHaveLength(1);
    expect(parseToolCalls('The answer is 4.', 'llama3')).toEqual({ calls: [] });
    expect(parseToolCalls('{"name": "calculate", "parameters": ', 'llama3').error).toMatch(/not valid JSON/);
    expect(toolCallFormat(tok)).toBe('qwen');
  });

  it('run under a time limit; every failure becomes a message to the model', async () => {
    const tools: Tool[] = [
      calc,
      { name: 'obj', fn: () => ({ a: 1, b: [2] }) },
      { name: 'throws', fn: () => { throw new Error('db down'); } },
      { name: 'hangs', fn: ({ }, { signal }) => new Promise((r) => signal.addEventListener('abort', () => r('late'))) },
      { name: 'bigint', fn: () => ({ n: 1n }) },
      { name: 'nothing', fn: () => undefined },
    ];
    const runner = new ToolRunner(validateTools(tools), 200);
    expect(await runner.run({ name: 'calculate', arguments: { expression: '12 * (3 + 4)' } })).toMatchObject({ content: '84', ok: true });
    expect(await runner.run({ name: 'obj', arguments: {} })).toMatchObject({ content: '{"a":1,"b":[2]}', ok: true });
    expect(await runner.run({ name: 'throws', arguments: {} })).toMatchObject({ content: 'error: db down', ok: false });
    const hung = await runner.run({ name: 'hangs', arguments: {} });
    expect(hung).toMatchObject({ content: 'error: the tool did not answer within 200 ms', ok: false });
    expect(hung.seconds).toBeLessThan(2);
    expect((await runner.run({ name: 'bigint', arguments: {} })).content).toMatch(/no JSON form/);
    expect((await runner.run({ name: 'nothing', arguments: {} })).ok).toBe(false);
    expect((await runner.run({ name: 'nope', arguments: {} })).content).toMatch(/unknown tool 'nope' \(available: calculate, obj/);
    expect((await runner.run({ name: 'calculate', arguments: { expression: 'process.exit()' } })).content).toMatch(/not an arithmetic expression/);
    expect(evaluateArithmetic('2 - 3 * -2')).toBe(8);
  });

  it('load from a module: a `tools` array or functions with a schema; bad modules are one clear error', async () => {
    const dir = tempDir();
    const mod = join(dir, 'tools.mjs');
    writeFileSync(mod, `export const tools = [{ name: 'echo', description: 'echo', parameters: { type: 'object' }, fn: (a) => a }];
export function add({ a, b }) { return a + b; }
add.schema = { description: 'a + b', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } };
export function notATool() {}
`);
    const tools = await loadToolsModule(mod);
    expect(tools.map((t) => t.name)).toEqual(['echo', 'add']);
    expect(await tools[1].fn({ a: 2, b: 3 }, { signal: new AbortController().signal })).toBe(5);
    expect((await loadToolsModule(join(import.meta.dirname, '..', 'examples', 'calculator-tool', 'tools.js'))).map((t) => t.name)).toEqual(['calculate']);
    await expect(loadToolsModule(join(dir, 'missing.mjs'))).rejects.toThrow(/tools module not found/);
    writeFileSync(join(dir, 'none.mjs'), 'export const x = 1;\n');
    await expect(loadToolsModule(join(dir, 'none.mjs'))).rejects.toThrow(/exports no tools/);
    expect(() => validateTools([calc, calc])).toThrow(/two tools are named 'calculate'/);
    expect(() => validateTools([{ name: 'bad name', fn: () => 1 }])).toThrow(/needs a name/);
  });
});

describe('conversations through the real Qwen3 chat template', () => {
  it('show the tools in the prompt and append tool results as tool messages', () => {
    const c = new Conversation({ messages: [{ role: 'user', content: 'What is 6*7?' }] }, [calc], tok);
    const prompt = c.promptText();
    expect(prompt).toContain('<tools>\n{"type": "function", "function": {"name": "calculate"');
    expect(prompt.endsWith('<|im_start|>user\nWhat is 6*7?<|im_end|>\n<|im_start|>assistant\n')).toBe(true);
    const call = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>';
    expect(c.appendAfter(call, [{ role: 'tool', content: '42' }])).toBe('<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n');
    // a second turn continues the same conversation
    expect(c.appendAfter('Then 42 + 1:\n<tool_call>\n{"name": "calculate", "arguments": {"expression": "42+1"}}\n</tool_call>', [{ role: 'tool', content: '43' }])).toBe(
      '<|im_end|>\n<|im_start|>user\n<tool_response>\n43\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('plain-text prompts get a plain tool format', () => {
    const c = new Conversation('Q: 6*7?', [calc], undefined);
    expect(c.promptText()).toMatch(/^You may call these tools:\n- calculate: .*\n.*<tool_call>.*\n\nQ: 6\*7\?$/s);
    expect(c.appendAfter('<tool_call>{"name":"calculate","arguments":{"expression":"6*7"}}</tool_call>', [{ role: 'tool', content: '42' }])).toBe('\n<tool_response>\n42\n</tool_response>\n');
  });
});

describe('MultiTurnBatch answers scripted assistant turns', () => {
  const model = () => ({ tokenizer: tok }) as unknown as Model;
  const examples = [{ question: 'q', answer: '42', prompt: { messages: [{ role: 'user', content: 'What is 6*7?' }] } }] as never[];
  const turn = (text: string, sample = 0) => ({ request: 0, sample, tokens: tok.encode(text, { addSpecialTokens: false }) });

  it('runs a tool call and appends its answer; a turn without a call ends the completion', async () => {
    const b = new MultiTurnBatch(model(), { tools: [calc], maxToolCallingIterations: 3, toolTimeoutMs: 1000 }, examples, 2, 512);
    expect(tok.decode(b.promptTokens(0), { skipSpecialTokens: false })).toContain('<tools>');
    expect(b.stops()).toEqual(['</tool_call>']);
    const appended = await b.onTurn(turn('<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>'));
    expect(tok.decode(appended as number[], { skipSpecialTokens: false })).toBe('<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n');
    expect(await b.onTurn(turn('The answer is \\boxed{42}.<|im_end|>'))).toBeNull();
    expect(b.episodes[0]).toMatchObject({ toolCalls: 1, toolFailures: 0, turns: 2 });
    expect(b.episodes[1]).toMatchObject({ toolCalls: 0, turns: 0 }); // sample 1 untouched
    // a malformed call is answered with the error and counted as a failure
    const bad = await b.onTurn(turn('<tool_call>{"name": "calculate", "arguments": {oops}}</tool_call>', 1));
    expect(tok.decode(bad as number[], { skipSpecialTokens: false })).toContain('<tool_response>\nerror: the tool call is not valid JSON');
    expect(b.episodes[1]).toMatchObject({ toolCalls: 1, toolFailures: 1 });
  });

  it('stops at max_tool_calling_iterations and when an answer would pass the token budget', async () => {
    const b = new MultiTurnBatch(model(), { tools: [calc], maxToolCallingIterations: 1, toolTimeoutMs: 1000 }, examples, 1, 512);
    const call = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "1+1"}}\n</tool_call>';
    expect(await b.onTurn(turn(call))).not.toBeNull();
    expect(await b.onTurn(turn(call))).toBeNull(); // the second call is past the limit
    const tight = new MultiTurnBatch(model(), { tools: [calc], maxToolCallingIterations: 5, toolTimeoutMs: 1000 }, examples, 1, 30);
    expect(await tight.onTurn(turn(call))).toBeNull(); // the answer would not fit in 30 tokens
  });

  it('a malformed call quotes itself back when the budget allows, else gets the short error', async () => {
    const bad = '<tool_call>{"name": "calculate", "arguments": {"expression": "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10"}}}</tool_call>';
    const roomy = new MultiTurnBatch(model(), { tools: [calc], maxToolCallingIterations: 2, toolTimeoutMs: 1000 }, examples, 1, 512);
    const long = tok.decode((await roomy.onTurn(turn(bad))) as number[], { skipSpecialTokens: false });
    expect(long).toContain('error: the tool call is not valid JSON');
    expect(long).toContain('"expression": "1 + 2 + 3'); // the call, quoted
    const used = tok.encode(bad, { addSpecialTokens: false }).length;
    const shortTokens = tok.encode('<|im_end|>\n<|im_start|>user\n<tool_response>\nerror: x\n</tool_response><|im_end|>\n<|im_start|>assistant\n', { addSpecialTokens: false }).length;
    const longTokens = tok.encode(long, { addSpecialTokens: false }).length;
    // a budget with room for the error but not for the quoted call
    const budget = used + longTokens - 5;
    const tight = new MultiTurnBatch(model(), { tools: [calc], maxToolCallingIterations: 2, toolTimeoutMs: 1000 }, examples, 1, budget);
    const answer = await tight.onTurn(turn(bad));
    expect(answer).not.toBeNull();
    const short = tok.decode(answer as number[], { skipSpecialTokens: false });
    expect(short).toContain('error: the tool call is not valid JSON');
    expect(short).not.toContain('"expression"');
    expect(answer!.length).toBeGreaterThan(shortTokens);
    expect(tight.episodes[0]).toMatchObject({ toolCalls: 1, toolFailures: 1 });
  });

  it('a chat template that ignores tools is detected', () => {
    expect(chatTemplateShowsTools(tok, [calc])).toBe(true);
    const blind = { ...tok, chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}', applyChatTemplate: (m: { content: string }[]) => m.map((x) => x.content).join('') } as unknown as HfTokenizer;
    expect(chatTemplateShowsTools(blind, [calc])).toBe(false);
  });

  it('environments: rewards add up, messages continue the conversation, done ends it, a throw ends it with 0', async () => {
    let steps = 0;
    const env = (): Environment => ({
      reset: () => [{ role: 'user', content: 'Guess my number (1-10).' }],
      step: (text) => {
        steps++;
        if (text.includes('boom')) throw new Error('simulator crashed');
        return text.includes('7') ? { reward: 1, done: true } : { reward: -0.1, messages: 'Higher.' };
      },
    });
    const b = new MultiTurnBatch(model(), { tools: [], environment: env, maxToolCallingIterations: 5, toolTimeoutMs: 1000 }, examples, 2, 512);
    expect(tok.decode(b.promptTokens(0), { skipSpecialTokens: false })).toContain('Guess my number');
    const next = await b.onTurn(turn('5<|im_end|>'));
    expect(tok.decode(next as number[], { skipSpecialTokens: false })).toBe('\n<|im_start|>user\nHigher.<|im_end|>\n<|im_start|>assistant\n');
    expect(await b.onTurn(turn('7<|im_end|>'))).toBeNull();
    expect(b.episodes[0].environmentReward).toBeCloseTo(0.9, 12);
    expect(await b.onTurn(turn('boom<|im_end|>', 1))).toBeNull();
    expect(b.episodes[1]).toMatchObject({ environmentReward: 0, environmentError: 'simulator crashed' });
    expect(b.warnings[0]).toMatch(/environment failed on prompt 0, sample 1: simulator crashed/);
    expect(steps).toBe(3);
  });
});
