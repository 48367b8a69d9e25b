// The trainers' event emitter: a node:events EventEmitter typed by an event map ({ step: [StepEvent], ... }),
// so on/once/off give listeners typed payloads. The trainers emit through safeEmit: a listener that throws
// does not stop training; the error is written to stderr as a warning.
import { EventEmitter } from 'node:events';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type EventMap = Record<string, any[]>;

export class TypedEmitter<E extends EventMap> extends EventEmitter<E> {
  /** Calls the listeners of `event`; an exception in one is reported, never propagated into the training loop. */
  protected safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): void {
    const listeners = (this as EventEmitter).rawListeners(event) as ((...a: unknown[]) => void)[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (err) {
        process.stderr.write(`hayate: warning: a '${event}' listener threw: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
}
