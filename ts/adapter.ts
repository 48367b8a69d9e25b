// LoRA adapters on disk in Hugging Face PEFT's format, so an adapter trained here loads in PEFT and vLLM
// unchanged and one trained there loads here:
//   adapter_model.safetensors  tensors base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight
//                              [r, in] and ...lora_B.weight [out, r] (mlp.gate_proj etc. for the MLP);
//                              PEFT strips the adapter name when saving, and we also accept it
//                              (…lora_A.default.weight), as loaded PEFT models name their parameters
//   adapter_config.json        peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, target_modules, ...
// and merging an adapter into the base weights as a full model directory.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HayateError, ModelFormatError } from './errors.js';
import { LORA_TARGETS, type LoraTarget, type Model } from './model.js';
import type { NativeLoraModule, NativeLoraTensors } from './native.js';
import { writeBytesAtomic } from './fs-atomic.js';
import { floatData, readSafetensors, writeSafetensors, type WriteTensor } from './safetensors.js';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';

const ATTENTION_TARGETS = new Set<string>(['q_proj', 'k_proj', 'v_proj', 'o_proj']);

/** The module path of a projection inside a transformers causal LM ("model.layers.3.mlp.up_proj"). */
export function modulePath(layer: number, target: LoraTarget): string {
  return `model.layers.${layer}.${ATTENTION_TARGETS.has(target) ? 'self_attn' : 'mlp'}.${target}`;
}

/** PEFT's saved tensor name of lora_A / lora_B of a projection. */
export function peftTensorName(layer: number, target: LoraTarget, which: 'A' | 'B'): string {
  return `base_model.model.${modulePath(layer, target)}.lora_${which}.weight`;
}

const NAME_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;

/** Parses a PEFT LoRA tensor name (with or without an adapter name segment); null when it is not one. */
export function parsePeftTensorName(name: string): { layer: number; target: LoraTarget; which: 'A' | 'B' } | null {
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const target = m[3] as LoraTarget;
  if (!(LORA_TARGETS as readonly string[]).includes(target)) return null;
  if ((m[2] === 'self_attn') !== ATTENTION_TARGETS.has(target)) return null;
  return { layer: Number(m[1]), target, which: m[4] as 'A' | 'B' };
}

export interface AdapterSaveOptions {
  /** adapter_config.json's base_model_name_or_path (default: the model's directory). */
  baseModelNameOrPath?: string;
}

/**
 * adapter_config.json for adapters on `modules`: target_modules is the list of projection names when the
 * modules are every listed projection on a set of layers (plus layers_to_transform when that set is not
 * all layers), otherwise a regular expression matching exactly the adapted module paths.
 */
export function buildAdapterConfig(
  lora: { rank: number; alpha: number; rslora: boolean; modules: readonly NativeLoraModule[] },
  numLayers: number,
  baseModelNameOrPath: string,
): Record<string, unknown> {
  const targets = [...new Set(lora.modules.map((m) => m.target))].sort();
  const layers = [...new Set(lora.modules.map((m) => m.layer))].sort((a, b) => a - b);
  const isProduct = targets.length * layers.length === lora.modules.length;
  let targetModules: string[] | string = targets;
  let layersToTransform: number[] | null = null;
  if (!isProduct) {
    targetModules = lora.modules.map((m) => modulePath(m.layer, m.target).replace(/\./g, '\\.')).join('|');
  } else if (layers.length !== numLayers) {
    layersToTransform = layers;
  }
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: layersToTransform ? 'layers' : null,
    layers_to_transform: layersToTransform,
    loftq_config: {},
    lora_alpha: lora.alpha,
    lora_dropout: 0.0,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.rank,
    rank_pattern: {},
    revision: null,
    target_modules: targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: lora.rslora,
  };
}

/** Writes the model's attached adapters to `dir` in PEFT's format; returns the file names. */
export async function saveAdapter(model: Model, dir: string, options: AdapterSaveOptions = {}): Promise<string[]> {
  const info = model.lora;
  if (!info) throw new HayateError('ERR_INVALID_ARGUMENT', 'the model has no LoRA adapters to save');
  const tensors = await model.loraTensors();
  mkdirSync(dir, { recursive: true });
  const out: WriteTensor[] = [];
  for (const t of tensors) {
    const m = info.modules.find((x) => x.layer === t.layer && x.target === t.target)!;
    out.push({ name: peftTensorName(t.layer, t.target, 'A'), dtype: 'F32', shape: [info.rank, m.in], data: Float32Array.from(t.a) });
    out.push({ name: peftTensorName(t.layer, t.target, 'B'), dtype: 'F32', shape: [m.out, info.rank], data: Float32Array.from(t.b) });
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), out, { format: 'pt' });
  const config = buildAdapterConfig(info, model.info.numLayers, options.baseModelNameOrPath ?? resolve(model.dir));
  writeBytesAtomic(join(dir, ADAPTER_CONFIG_FILE), Buffer.from(JSON.stringify(config, null, 2) + '\n', 'utf8'));
  return [ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE];
}

export interface LoadedAdapter {
  rank: number;
  alpha: number;
  rslora: boolean;
  modules: NativeLoraModule[];
  config: Record<string, unknown>;
}

function badConfig(path: string, message: string): ModelFormatError {
  return new ModelFormatError('ERR_BAD_CONFIG', `${path}: ${message}`);
}

/** Which module paths a PEFT target_modules value selects (list: name or path suffix; string: full regex match). */
function targetMatcher(path: string, value: unknown): (modulePath: string) => boolean {
  if (typeof value === 'string') {
    if (value === 'all-linear') return () => true;  // every linear layer but the output head
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${value})$`);
    } catch {
      throw badConfig(path, `target_modules is not a valid regular expression: ${value}`);
    }
    return (p) => re.test(p);
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw badConfig(path, 'target_modules must be a list of module names or a regular expression string');
  }
  const names = value as string[];
  for (const n of names) {
    const last = n.split('.').pop() as string;
    if (!(LORA_TARGETS as readonly string[]).includes(last)) {
      throw badConfig(path, `target module '${n}' is not supported (hayate adapts ${LORA_TARGETS.join(', ')}; embeddings and lm_head cannot carry adapters)`);
    }
  }
  return (p) => names.some((n) => p === n || p.endsWith(`.${n}`));
}

/** Reads and validates an adapter directory against a model's shapes (no native calls). */
export function readAdapter(dir: string, model: Pick<Model, 'info'>): { adapter: LoadedAdapter; tensors: NativeLoraTensors[] } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new HayateError('ERR_NOT_FOUND', `adapter directory not found: ${dir}`);
  const cfgPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(cfgPath)) throw new HayateError('ERR_NOT_FOUND', `${dir} has no ${ADAPTER_CONFIG_FILE}: not a PEFT adapter directory`);
  if (!existsSync(weightsPath)) {
    const bin = existsSync(join(dir, 'adapter_model.bin'));
    throw new HayateError('ERR_NOT_FOUND', bin
      ? `${dir} has only adapter_model.bin (a pickle); convert it to ${ADAPTER_WEIGHTS_FILE} (PEFT's save_pretrained does by default)`
      : `${dir} has no ${ADAPTER_WEIGHTS_FILE}`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw badConfig(cfgPath, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw badConfig(cfgPath, 'not a JSON object');
  if (config.peft_type !== 'LORA') throw badConfig(cfgPath, `peft_type is ${JSON.stringify(config.peft_type)}; only LORA adapters are supported`);
  const r = config.r ?? 8;  // PEFT's defaults
  const alpha = config.lora_alpha ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw new HayateError('ERR_INVALID_ARGUMENT', `${cfgPath}: LoRA rank r must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw badConfig(cfgPath, `lora_alpha must be a number, got ${JSON.stringify(alpha)}`);
  const unsupported: [string, boolean][] = [
    ['use_dora', config.use_dora === true],
    ['bias other than "none"', config.bias !== undefined && config.bias !== 'none'],
    ['fan_in_fan_out', config.fan_in_fan_out === true],
    ['modules_to_save', Array.isArray(config.modules_to_save) && config.modules_to_save.length > 0],
    ['rank_pattern', typeof config.rank_pattern === 'object' && config.rank_pattern !== null && Object.keys(config.rank_pattern).length > 0],
    ['alpha_pattern', typeof config.alpha_pattern === 'object' && config.alpha_pattern !== null && Object.keys(config.alpha_pattern).length > 0],
    ['layer_replication', Array.isArray(config.layer_replication) && config.layer_replication.length > 0],
  ];
  for (const [what, used] of unsupported) if (used) throw badConfig(cfgPath, `uses ${what}, which hayate does not support`);
  if (config.task_type !== undefined && config.task_type !== null && config.task_type !== 'CAUSAL_LM') {
    throw badConfig(cfgPath, `task_type is ${JSON.stringify(config.task_type)}; expected CAUSAL_LM`);
  }
  const matches = targetMatcher(cfgPath, config.target_modules);

  const file = readSafetensors(weightsPath);
  const found = new Map<string, { layer: number; target: LoraTarget; a?: Float64Array; b?: Float64Array }>();
  const { numLayers, hiddenSize: D, intermediateSize: F, numHeads, numKvHeads, headDim } = model.info;
  const dims: Record<LoraTarget, [number, number]> = {
    q_proj: [numHeads * headDim, D], k_proj: [numKvHeads * headDim, D], v_proj: [numKvHeads * headDim, D],
    o_proj: [D, numHeads * headDim], gate_proj: [F, D], up_proj: [F, D], down_proj: [D, F],
  };
  for (const [name, t] of file) {
    const p = parsePeftTensorName(name);
    if (!p) throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath}: unexpected tensor '${name}' (hayate loads LoRA A/B of ${LORA_TARGETS.join(', ')} only)`);
    if (p.layer >= numLayers) throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath}: '${name}' is for layer ${p.layer}, but the model has ${numLayers} layers`);
    const path = modulePath(p.layer, p.target);
    if (!matches(path)) throw badConfig(cfgPath, `target_modules does not cover ${path}, for which the weights hold '${name}'`);
    const [out, inp] = dims[p.target];
    const want = p.which === 'A' ? [r, inp] : [out, r];
    if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath}: '${name}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}] (r = ${r}; was the adapter made for another model?)`);
    }
    const key = `${p.layer}.${p.target}`;
    const entry = found.get(key) ?? { layer: p.layer, target: p.target };
    const data = floatData(t, name);
    if ((p.which === 'A' ? entry.a : entry.b) !== undefined) throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath}: two tensors for lora_${p.which} of ${path}`);
    if (p.which === 'A') entry.a = data;
    else entry.b = data;
    found.set(key, entry);
  }
  if (found.size === 0) throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath} holds no LoRA tensors`);
  const tensors: NativeLoraTensors[] = [];
  for (const e of found.values()) {
    if (!e.a || !e.b) throw new ModelFormatError('ERR_BAD_TENSOR', `${weightsPath}: ${modulePath(e.layer, e.target)} has lora_${e.a ? 'A' : 'B'} but no lora_${e.a ? 'B' : 'A'}`);
    tensors.push({ layer: e.layer, target: e.target, a: e.a, b: e.b });
  }
  tensors.sort((x, y) => x.layer - y.layer || LORA_TARGETS.indexOf(x.target) - LORA_TARGETS.indexOf(y.target));
  const adapter: LoadedAdapter = {
    rank: r,
    alpha,
    rslora: config.use_rslora === true,
    modules: tensors.map((t) => ({ layer: t.layer, target: t.target })),
    config,
  };
  return { adapter, tensors };
}

/** Loads a PEFT adapter directory onto the model (replacing any attached adapters). */
export async function loadAdapter(model: Model, dir: string): Promise<LoadedAdapter> {
  const { adapter, tensors } = readAdapter(dir, model);
  await model.attachLora({ rank: adapter.rank, alpha: adapter.alpha, rslora: adapter.rslora, modules: adapter.modules });
  await model.setLoraTensors(tensors);
  return adapter;
}

const WEIGHT_FILE_RE = /^(model\.safetensors|model\.safetensors\.index\.json|model-\d{5}-of-\d{5}\.safetensors|pytorch_model.*\.bin)$/;

/**
 * Writes a full model directory to `outDir`: the base model's weights with the attached adapters merged
 * (W + scale * B A, in each weight's dtype) as model.safetensors, and the base directory's other files
 * (config, tokenizer, generation config) copied. The merged directory loads anywhere a model does.
 */
export async function saveMergedModel(model: Model, outDir: string, options: { overwrite?: boolean } = {}): Promise<void> {
  if (!model.lora) throw new HayateError('ERR_INVALID_ARGUMENT', 'the model has no LoRA adapters to merge');
  if (resolve(outDir) === resolve(model.dir)) throw new HayateError('ERR_INVALID_ARGUMENT', 'the merged model must go to another directory than the base model');
  mkdirSync(outDir, { recursive: true });
  if (existsSync(join(outDir, 'config.json')) && !options.overwrite) {
    throw new HayateError('ERR_INVALID_ARGUMENT', `${outDir} already holds a model (config.json); pass overwrite to replace it`);
  }
  for (const f of readdirSync(outDir)) {
    if (WEIGHT_FILE_RE.test(f) && f !== 'model.safetensors') throw new HayateError('ERR_INVALID_ARGUMENT', `${outDir} holds other weights (${f}); use an empty directory`);
  }
  await model.runNative(undefined, (handle) => handle.saveMerged(model.dir, join(outDir, 'model.safetensors')));
  const skip = (f: string) => WEIGHT_FILE_RE.test(f) || f === 'config.json' || f === ADAPTER_CONFIG_FILE || f === ADAPTER_WEIGHTS_FILE;
  const files = readdirSync(model.dir).filter((f) => !skip(f) && statSync(join(model.dir, f)).isFile());
  for (const f of files) copyFileSync(join(model.dir, f), join(outDir, f));
  copyFileSync(join(model.dir, 'config.json'), join(outDir, 'config.json'));  // last: a directory with a config is complete
}
