// Reward specifications: which reward, with which weight. From the command line or a config file a spec
// is a string:
//   correctness            built-in, weight 1
//   format=0.5             built-in, weight 0.5
//   overlong(maxLength=512,buffer=128)=1
//   ./my_rewards.js:myFn=0.5     export myFn of a JS module (path relative to the working directory)
//   ./my_rewards.js=2            every exported function of the module, weight 2 each
// From code a spec may also be a plain function ({ name, fn }), run on the calling thread.
import { isAbsolute, resolve } from 'node:path';
import { HayateError } from '../errors.js';
import { BUILTIN_REWARD_NAMES } from './builtin.js';
import type { RewardFunction } from './types.js';

export interface BuiltinRewardSpec {
  kind: 'builtin';
  /** A built-in name: correctness, format, length, overlong. */
  name: string;
  weight?: number;
  options?: Record<string, number>;
  /** Metric name (default: the built-in's name). */
  alias?: string;
}

export interface ModuleRewardSpec {
  kind: 'module';
  /** Path of a JavaScript module (ESM or CommonJS; .ts only where tsx is installed). */
  path: string;
  /** The exported function; all exported functions when omitted. */
  export?: string;
  weight?: number;
  /** Metric name (default: the export's name; a default export takes the file's base name). Only with `export`. */
  alias?: string;
}

export interface FunctionRewardSpec {
  kind: 'function';
  name: string;
  fn: RewardFunction;
  weight?: number;
}

export type RewardSpec = BuiltinRewardSpec | ModuleRewardSpec | FunctionRewardSpec;

function bad(spec: string, why: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', `bad reward spec '${spec}': ${why}`);
}

function parseNumberValue(spec: string, what: string, text: string): number {
  const v = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(v)) throw bad(spec, `${what} must be a number, got '${text}'`);
  return v;
}

/** Parses a reward spec string (see the module comment); relative module paths resolve against `cwd`. */
export function parseRewardSpec(text: string, cwd: string = process.cwd()): BuiltinRewardSpec | ModuleRewardSpec {
  const spec = text.trim();
  if (spec === '') throw bad(text, 'empty');
  let body = spec;
  let weight: number | undefined;
  // The weight is a trailing "=number" outside parentheses.
  const eq = body.lastIndexOf('=');
  if (eq > 0 && body.lastIndexOf(')') < eq) {
    weight = parseNumberValue(spec, 'the weight', body.slice(eq + 1));
    body = body.slice(0, eq);
  }
  let options: Record<string, number> | undefined;
  const paren = /^(.*)\(([^()]*)\)$/.exec(body);
  if (paren) {
    body = paren[1];
    options = {};
    for (const part of paren[2].split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const kv = /^([A-Za-z_]\w*)\s*=\s*(.+)$/.exec(part);
      if (!kv) throw bad(spec, `option '${part}' is not key=value`);
      options[kv[1]] = parseNumberValue(spec, `option ${kv[1]}`, kv[2]);
    }
  }
  const looksLikePath = /[\\/]/.test(body) || /\.(?:[cm]?js|[cm]?ts)(?::|$)/.test(body);
  if (!looksLikePath) {
    if (!(BUILTIN_REWARD_NAMES as readonly string[]).includes(body)) {
      throw bad(spec, `'${body}' is not a built-in reward (${BUILTIN_REWARD_NAMES.join(', ')}) nor a module path (use ./file.js)`);
    }
    const out: BuiltinRewardSpec = { kind: 'builtin', name: body };
    if (weight !== undefined) out.weight = weight;
    if (options) out.options = options;
    return out;
  }
  if (options) throw bad(spec, 'options in parentheses are for built-in rewards only');
  // "path:export", keeping a Windows drive letter ("C:\...") in the path.
  let path = body;
  let exportName: string | undefined;
  const colon = body.lastIndexOf(':');
  if (colon > 1 || (colon === 1 && !/^[A-Za-z]:[\\/]/.test(body))) {
    path = body.slice(0, colon);
    exportName = body.slice(colon + 1);
    if (!/^[A-Za-z_$][\w$]*$/.test(exportName)) throw bad(spec, `'${exportName}' is not an export name`);
  }
  const out: ModuleRewardSpec = { kind: 'module', path: isAbsolute(path) ? path : resolve(cwd, path) };
  if (exportName !== undefined) out.export = exportName;
  if (weight !== undefined) out.weight = weight;
  return out;
}

/** The recipe's rewards: correctness (weight 1) + format (0.1 when boxed, weight 1). */
export function defaultRewardSpecs(): BuiltinRewardSpec[] {
  return [
    { kind: 'builtin', name: 'correctness', weight: 1 },
    { kind: 'builtin', name: 'format', weight: 1 },
  ];
}
