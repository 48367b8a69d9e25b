// Export to other runtimes: GGUF for llama.cpp, Ollama and LM Studio.
export { exportGguf, readExportConfig, GGUF_DTYPES } from './gguf-export.js';
export type { GgufDtype, GgufExportOptions, GgufExportResult } from './gguf-export.js';
export { GGUF_PRE_TOKENIZERS } from './gguf-vocab.js';
