#!/usr/bin/env node
// The `hayate` command line.
import { Command } from 'commander';
import { generateCommand } from './generate.js';
import { initModelCommand } from './init-model.js';

const program = new Command('hayate')
  .description('GRPO + LoRA trainer for LLaMA-family models (LLaMA, Qwen2, Qwen3) on a native C++/CUDA engine')
  .version('0.1.0')
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(`hayate: ${str.replace(/^error: /, 'error: ')}`) });

program.addCommand(initModelCommand());
program.addCommand(generateCommand());

program.exitOverride((err) => {
  // commander's own usage errors exit 2; help/version exit 0
  process.exit(err.exitCode === 0 ? 0 : 2);
});

await program.parseAsync(process.argv);
