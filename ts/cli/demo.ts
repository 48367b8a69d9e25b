// `hayate demo`: the whole job on a fresh machine, nothing downloaded. Creates a tiny model from random
// weights, trains it with SFT on synthetic arithmetic word problems, evaluates it on held-out problems, runs
// GRPO from the SFT model, evaluates again and prints the before/after table (see ts/demo/).
import { Command } from 'commander';
import { DEMO_DEFAULTS, resolveDemoConfig } from '../demo/config.js';
import { runDemo, type DemoPhase } from '../demo/pipeline.js';
import { formatDemoReport } from '../demo/report.js';
import { ProgressLine } from '../metrics/progress.js';
import { interruptSignal, reportAndExit } from './errors.js';
import { intOption } from './parse.js';

interface DemoCliOptions {
  seed?: number;
  out: string;
  quick?: boolean;
  sftSteps?: number;
  grpoSteps?: number;
  evalProblems?: number;
  threads?: number;
  json?: boolean;
}

const PHASE_LABELS: Record<DemoPhase, string> = {
  init: 'init model',
  sft: 'SFT',
  'eval-sft': 'eval (SFT)',
  grpo: 'GRPO',
  'eval-grpo': 'eval (GRPO)',
};

export function demoCommand(): Command {
  return new Command('demo')
    .description('train a tiny model from scratch: SFT on synthetic arithmetic, then GRPO; prints held-out accuracy before/after GRPO')
    .option('--seed <n>', `seed of everything: weights, data, sampling (default ${DEMO_DEFAULTS.seed})`, intOption('--seed', 0))
    .option('--out <dir>', 'output directory (model, adapters, metrics, reward curve, eval records)', 'hayate-demo')
    .option('--quick', 'a seconds-long smoke run of the pipeline (tiny model, a few steps; accuracy meaningless)')
    .option('--sft-steps <n>', `run exactly this many SFT updates (default: stop once ${Math.round(100 * (DEMO_DEFAULTS.sft.stopAtAccuracy ?? 0))}% of a probe of training problems is solved, at most ${DEMO_DEFAULTS.sft.steps})`, intOption('--sft-steps', 1))
    .option('--grpo-steps <n>', `GRPO steps (default ${DEMO_DEFAULTS.grpo.steps})`, intOption('--grpo-steps', 1))
    .option('--eval-problems <n>', `held-out problems evaluated (default ${DEMO_DEFAULTS.task.evalProblems})`, intOption('--eval-problems', 1))
    .option('--threads <n>', 'CPU threads (default: all)', intOption('--threads', 0))
    .option('--json', 'print the result as JSON instead of the table')
    .action(async (o: DemoCliOptions) => {
      try {
        const config = resolveDemoConfig({ quick: o.quick, seed: o.seed, threads: o.threads, sftSteps: o.sftSteps, grpoSteps: o.grpoSteps, evalProblems: o.evalProblems });
        const signal = interruptSignal();
        let line: ProgressLine | undefined;
        let phase: DemoPhase | undefined;
        const result = await runDemo({
          config,
          outDir: o.out,
          signal,
          onProgress: (p) => {
            if (p.phase !== phase) {
              line?.finish();
              phase = p.phase;
              line = new ProgressLine({ label: PHASE_LABELS[p.phase], total: p.total, intervalMs: 15_000 });
            }
            line?.update(p.done, p.values);
          },
        });
        line?.finish();
        process.stdout.write(o.json ? `${JSON.stringify(result, null, 2)}\n` : `\n${formatDemoReport(result)}\n`);
      } catch (err) {
        reportAndExit(err);
      }
    });
}
