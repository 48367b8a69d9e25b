// Tools from a JavaScript module (`hayate train --tools FILE.js`). The module exports tools in either form:
//   export const tools = [{ name, description, parameters, fn }, ...];    // Tool objects (types.ts)
//   export function calculate({ expression }) { ... }                    // a function with a schema:
//   calculate.schema = { description: 'Evaluate arithmetic', parameters: { type: 'object', ... } };
// (a function's name is its export name unless its schema names it). Exports that are neither are ignored.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HayateError } from '../errors.js';
import type { Tool } from './types.js';

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function bad(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

/** Checks library-given tools: unique valid names, a function each, an object schema. */
export function validateTools(tools: readonly Tool[], where = 'tools'): Tool[] {
  if (!Array.isArray(tools) || tools.length === 0) throw bad(`${where}: give at least one tool`);
  const seen = new Set<string>();
  for (const t of tools) {
    if (!t || typeof t !== 'object' || typeof t.name !== 'string' || !NAME.test(t.name)) throw bad(`${where}: every tool needs a name of letters, digits, _ or - (got ${JSON.stringify((t as Tool)?.name)})`);
    if (typeof t.fn !== 'function') throw bad(`${where}: tool '${t.name}' has no fn`);
    if (t.parameters !== undefined && (typeof t.parameters !== 'object' || t.parameters === null || Array.isArray(t.parameters))) throw bad(`${where}: tool '${t.name}': parameters must be a JSON-schema object`);
    if (seen.has(t.name)) throw bad(`${where}: two tools are named '${t.name}'`);
    seen.add(t.name);
  }
  return [...tools];
}

/** Imports a user module by path (tools, environments), with errors that name it and what it was for. */
export async function importUserModule(path: string, what: string): Promise<Record<string, unknown>> {
  const file = resolve(path);
  if (!existsSync(file)) throw new HayateError('ERR_NOT_FOUND', `${what} module not found: ${path}`);
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `${what} module ${path} failed to load: ${(err as Error).message}`, { cause: err });
  }
}

/** The tools a module exports (see the file comment for the shapes). */
export async function loadToolsModule(path: string): Promise<Tool[]> {
  const mod = await importUserModule(path, 'tools');
  const tools: Tool[] = [];
  if (Array.isArray(mod.tools)) tools.push(...(mod.tools as Tool[]));
  for (const [exportName, v] of Object.entries(mod)) {
    if (typeof v !== 'function') continue;
    const schema = (v as { schema?: { name?: string; description?: string; parameters?: Record<string, unknown> } }).schema;
    if (!schema || typeof schema !== 'object') continue;
    const fn = v as (args: Record<string, unknown>, ctx: { signal: AbortSignal }) => unknown;
    tools.push({ name: schema.name ?? (exportName === 'default' ? fn.name : exportName), description: schema.description, parameters: schema.parameters, fn });
  }
  if (tools.length === 0) throw bad(`tools module ${path} exports no tools: export \`tools\` (an array of { name, description, parameters, fn }) or functions with a \`schema\` property`);
  return validateTools(tools, `tools module ${path}`);
}
