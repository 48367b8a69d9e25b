#!/usr/bin/env node
// The `hayate` command line.
import { Command } from 'commander';
import { generateCommand } from './generate.js';
import { initModelCommand } from './init-model.js';

const program = new Command('hayate')
  .description('GRPO + LoRA trainer for LLaMA-family models (LLaMA, Qwen2, Qwen3) on a native C++/CUDA engine')
  .version('0.1.0');

program.addCommand(initModelCommand());
program.addCommand(generateCommand());

// Usage errors (unknown flags, invalid values) print one line and exit 2, for every subcommand.
for (const cmd of [program, ...program.commands]) {
  cmd
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(`hayate: ${str}`) })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
}

await program.parseAsync(process.argv);
