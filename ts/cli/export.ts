// `hayate export`: a model directory, with a LoRA adapter merged if given, as one GGUF file for llama.cpp,
// Ollama and LM Studio.
import { Command, Option } from 'commander';
import { exportGguf, GGUF_DTYPES, type GgufDtype } from '../export/index.js';
import { GGUF_PRE_TOKENIZERS } from '../export/gguf-vocab.js';
import { reportAndExit } from './errors.js';
import { intOption } from './parse.js';

interface ExportCliOptions {
  output: string;
  adapter?: string;
  dtype: GgufDtype;
  name?: string;
  preTokenizer?: string;
  threads?: number;
  overwrite?: boolean;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model (with a LoRA adapter merged) as GGUF for llama.cpp, Ollama and LM Studio')
    .argument('<model>', 'Hugging Face model directory (LLaMA, Qwen2, Qwen3)')
    .requiredOption('-o, --output <file>', 'the .gguf file to write')
    .option('--adapter <dir>', 'PEFT adapter directory to merge into the weights')
    .addOption(new Option('--dtype <dtype>', 'weight type of the matrices (norms and biases stay f32)').choices(GGUF_DTYPES).default('f16'))
    .option('--name <name>', 'general.name in the file (default: the model directory\'s name)')
    .addOption(new Option('--pre-tokenizer <name>', 'llama.cpp pre-tokenizer, when the one in tokenizer.json is not recognised').choices(GGUF_PRE_TOKENIZERS))
    .option('--threads <n>', 'CPU threads for merging an adapter (default: all)', intOption('--threads', 1, 4096))
    .option('--overwrite', 'replace an existing output file')
    .action(async (model: string, o: ExportCliOptions) => {
      try {
        const tty = process.stderr.isTTY;
        const t0 = performance.now();
        const r = await exportGguf(model, o.output, {
          dtype: o.dtype,
          adapter: o.adapter,
          name: o.name,
          preTokenizer: o.preTokenizer,
          threads: o.threads,
          overwrite: o.overwrite ?? false,
          onProgress: tty ? (p) => process.stderr.write(`\rwriting ${p.done}/${p.total} tensors`) : undefined,
        });
        if (tty) process.stderr.write('\n');
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        process.stdout.write(
          `wrote ${r.path}: ${r.architecture}, ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB` +
            `${r.merged ? ', LoRA merged' : ''} in ${secs} s\n`,
        );
      } catch (err) {
        reportAndExit(err);
      }
    });
}
