#!/usr/bin/env node
// The `hayate` command line.
import { Command } from 'commander';
import { benchCommand } from './bench.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { generateCommand } from './generate.js';
import { initModelCommand } from './init-model.js';
import { trainCommand } from './train.js';

const program = new Command('hayate')
  .description('GRPO + LoRA trainer for LLaMA-family models (LLaMA, Qwen2, Qwen3) on a native C++/CUDA engine')
  .version('0.1.0');

program.addCommand(initModelCommand());
program.addCommand(generateCommand());
program.addCommand(evalCommand());
program.addCommand(trainCommand());
program.addCommand(benchCommand());
program.addCommand(demoCommand());
program.addCommand(exportCommand());

// Usage errors (unknown flags, invalid values) print one line and exit 2, for every subcommand.
const allCommands = (c: Command): Command[] => [c, ...c.commands.flatMap(allCommands)];
for (const cmd of allCommands(program)) {
  cmd
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(`hayate: ${str}`) })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
}

await program.parseAsync(process.argv);
