// Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup define them:
// the rate of update number `step` (0-based: the first update uses step 0, so a warmup starts at 0).
import { HayateError } from './errors.js';

export type LrScheduleType = 'constant' | 'linear' | 'cosine';

export interface LrScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Default 'constant'. */
  type?: LrScheduleType;
  /** Updates of linear warmup from 0 to lr (default 0). */
  warmupSteps?: number;
  /** Total updates: linear decays to 0 and cosine to minLrRatio * lr at this step. Required for both. */
  totalSteps?: number;
  /** Cosine floor as a fraction of lr (default 0). */
  minLrRatio?: number;
}

function invalid(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

export function validateSchedule(o: LrScheduleOptions): void {
  const type = o.type ?? 'constant';
  if (!['constant', 'linear', 'cosine'].includes(type)) throw invalid(`unknown learning-rate schedule '${String(type)}' (constant, linear, cosine)`);
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) throw invalid(`learning rate must be a number >= 0, got ${o.lr}`);
  const warmup = o.warmupSteps ?? 0;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw invalid(`warmupSteps must be an integer >= 0, got ${warmup}`);
  if (type !== 'constant' && !(Number.isInteger(o.totalSteps) && (o.totalSteps as number) > 0)) {
    throw invalid(`a ${type} schedule needs totalSteps (an integer > 0)`);
  }
  const floor = o.minLrRatio ?? 0;
  if (!(floor >= 0 && floor <= 1)) throw invalid(`minLrRatio must be in [0, 1], got ${floor}`);
}

/** The learning rate of update number `step` (0-based). */
export function learningRate(step: number, o: LrScheduleOptions): number {
  validateSchedule(o);
  const warmup = o.warmupSteps ?? 0;
  if (step < warmup) return (o.lr * step) / Math.max(1, warmup);
  const type = o.type ?? 'constant';
  if (type === 'constant') return o.lr;
  const total = o.totalSteps as number;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  if (type === 'linear') return o.lr * Math.max(0, 1 - progress);
  const floor = o.minLrRatio ?? 0;
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return o.lr * (floor + (1 - floor) * cosine);
}
