// Runs tool calls under a time limit and turns every outcome into the text the model reads next: the
// result (strings as they are, other values as JSON), or an error message when the tool is unknown, the
// call malformed, the tool throws, runs past its limit or returns something with no JSON form. Nothing a
// tool does stops the rollout: failures are counted and the model is told.
//
// Tools run in this thread (they are the caller's functions, often I/O: HTTP, databases); the limit aborts
// the `signal` they get and stops waiting for them. A tool that blocks the thread synchronously cannot be
// interrupted here: give such work to a worker yourself.
import type { Tool, ToolCall } from './types.js';

export interface ToolOutcome {
  /** What the model reads as the tool's answer. */
  content: string;
  ok: boolean;
  seconds: number;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class ToolRunner {
  private readonly byName: Map<string, Tool>;

  constructor(
    readonly tools: readonly Tool[],
    private readonly timeoutMs: number,
  ) {
    this.byName = new Map(tools.map((t) => [t.name, t]));
  }

  async run(call: ToolCall): Promise<ToolOutcome> {
    const started = performance.now();
    const done = (content: string, ok: boolean): ToolOutcome => ({ content, ok, seconds: (performance.now() - started) / 1000 });
    const tool = this.byName.get(call.name);
    if (!tool) return done(`error: unknown tool '${call.name}' (available: ${[...this.byName.keys()].join(', ')})`, false);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`the tool did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
    });
    try {
      const value = await Promise.race([Promise.resolve().then(() => tool.fn(call.arguments, { signal: controller.signal })), timeout]);
      if (typeof value === 'string') return done(value, true);
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (err) {
        return done(`error: the tool's result has no JSON form (${describe(err)})`, false);
      }
      if (json === undefined) return done('error: the tool returned nothing that can be shown (undefined or a function)', false);
      return done(json, true);
    } catch (err) {
      return done(`error: ${describe(err)}`, false);
    } finally {
      clearTimeout(timer);
    }
  }
}
