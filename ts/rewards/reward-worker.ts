// Worker thread of the reward pool: imports reward modules (once per thread), lists their exported
// functions, and runs one reward on one batch. Failures inside a reward come back as outcomes, not throws.
import { pathToFileURL } from 'node:url';
import { makeBuiltinReward } from './builtin.js';
import { checkRewardOutput, type RewardExtra, type RewardFunction, type RewardOutcome, type RewardPrompt } from './types.js';

export type RewardTarget = { builtin: string; options: Record<string, number> } | { path: string; export: string };

export type RewardTask =
  | { type: 'inspect'; path: string }
  | { type: 'call'; target: RewardTarget; prompts: RewardPrompt[]; completions: string[]; extra: RewardExtra };

export interface InspectResult {
  /** Names of the module's exported functions ('default' for a default-exported function). */
  functions: string[];
}

const modules = new Map<string, Promise<Record<string, unknown>>>();
const builtins = new Map<string, RewardFunction>();

function load(path: string): Promise<Record<string, unknown>> {
  let m = modules.get(path);
  if (!m) {
    m = import(pathToFileURL(path).href) as Promise<Record<string, unknown>>;
    modules.set(path, m);
    m.catch(() => modules.delete(path));
  }
  return m;
}

/** Exported functions of a module namespace; a CommonJS module.exports object counts as named exports. */
export function exportedFunctions(ns: Record<string, unknown>): Map<string, RewardFunction> {
  const out = new Map<string, RewardFunction>();
  for (const [k, v] of Object.entries(ns)) if (typeof v === 'function' && k !== 'default') out.set(k, v as RewardFunction);
  const d = ns.default;
  if (typeof d === 'function') out.set('default', d as RewardFunction);
  else if (d && typeof d === 'object') {
    for (const [k, v] of Object.entries(d)) if (typeof v === 'function' && !out.has(k)) out.set(k, v as RewardFunction);
  }
  return out;
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`;
  return typeof err === 'string' ? JSON.stringify(err) : String(err);
}

async function resolve(target: RewardTarget): Promise<RewardFunction> {
  if ('builtin' in target) {
    const key = `${target.builtin}:${JSON.stringify(target.options)}`;
    let fn = builtins.get(key);
    if (!fn) builtins.set(key, (fn = makeBuiltinReward(target.builtin, target.options)));
    return fn;
  }
  const fn = exportedFunctions(await load(target.path)).get(target.export);
  if (!fn) throw new Error(`${target.path} has no exported function '${target.export}'`);
  return fn;
}

export default async function runRewardTask(task: RewardTask): Promise<InspectResult | RewardOutcome> {
  if (task.type === 'inspect') return { functions: [...exportedFunctions(await load(task.path)).keys()] };
  let output: unknown;
  try {
    const fn = await resolve(task.target);
    output = await fn(task.prompts, task.completions, task.extra);
  } catch (err) {
    return { ok: false, kind: 'error', message: `threw: ${describe(err)}` };
  }
  return checkRewardOutput(output, task.completions.length);
}
