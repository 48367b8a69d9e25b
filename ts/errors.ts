// Typed errors. Every failure the engine detects reaches JS as a HayateError (or a subclass) whose `code`
// names the cause; the CLI maps them to one clear message and a non-zero exit code.

export type HayateErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NOT_FOUND'
  | 'ERR_IO'
  | 'ERR_BAD_CONFIG'
  | 'ERR_UNSUPPORTED_ARCH'
  | 'ERR_BAD_SAFETENSORS'
  | 'ERR_BAD_TENSOR'
  | 'ERR_CONTEXT_OVERFLOW'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_CANCELLED'
  | 'ERR_BACKEND'
  | 'ERR_DISPOSED'
  | 'ERR_NATIVE_ADDON'
  | 'ERR_TOKENIZER'
  | 'ERR_INTERNAL';

export class HayateError extends Error {
  readonly code: HayateErrorCode;
  constructor(code: HayateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HayateError';
    this.code = code;
  }
}

/** The model directory or one of its files is malformed (config, safetensors, tensor shapes, architecture). */
export class ModelFormatError extends HayateError {
  constructor(code: HayateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ModelFormatError';
  }
}

/** A prompt (plus generation) does not fit the model's context or the KV cache. */
export class ContextOverflowError extends HayateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONTEXT_OVERFLOW', message, options);
    this.name = 'ContextOverflowError';
  }
}

/** The operation was cancelled through an AbortSignal. */
export class AbortError extends HayateError {
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super('ERR_CANCELLED', message, options);
    this.name = 'AbortError';
  }
}

const FORMAT_CODES = new Set<string>(['ERR_BAD_CONFIG', 'ERR_UNSUPPORTED_ARCH', 'ERR_BAD_SAFETENSORS', 'ERR_BAD_TENSOR']);

/** Converts an error thrown or rejected by the native addon into the matching typed error. */
export function fromNative(err: unknown): Error {
  if (err instanceof HayateError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const code = typeof e?.code === 'string' ? e.code : 'ERR_INTERNAL';
  if (FORMAT_CODES.has(code)) return new ModelFormatError(code as HayateErrorCode, message, { cause: err });
  if (code === 'ERR_CONTEXT_OVERFLOW') return new ContextOverflowError(message, { cause: err });
  if (code === 'ERR_CANCELLED') return new AbortError(message, { cause: err });
  return new HayateError(code as HayateErrorCode, message, { cause: err });
}
