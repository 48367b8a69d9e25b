// Learning-rate schedule options shared by the trainers: the type and warmup (in updates, or as a ratio
// of all updates, as transformers' warmup_ratio), resolved against the run's number of updates.
import { HayateError } from '../errors.js';
import { validateSchedule, type LrScheduleOptions, type LrScheduleType } from '../lr-schedule.js';
import { SCHEDULE_DEFAULTS, SETTING_BOUNDS, formatBounds, inBounds } from '../training-defaults.js';

export interface ScheduleOptions {
  /** 'constant' (the default, SCHEDULE_DEFAULTS), 'linear' (decay to 0 at the last update) or 'cosine'. */
  type?: LrScheduleType;
  /** Updates of linear warmup from 0 (wins over warmupRatio). */
  warmupSteps?: number;
  /** Warmup as a fraction of all updates, rounded up (transformers' warmup_ratio). */
  warmupRatio?: number;
  /** Cosine floor as a fraction of the peak rate (default 0). */
  minLrRatio?: number;
}

/** The TrainerCore schedule for `totalUpdates` optimizer updates at peak rate `lr`. */
export function resolveSchedule(lr: number, totalUpdates: number, o: ScheduleOptions = {}): LrScheduleOptions {
  const ratio = o.warmupRatio ?? SCHEDULE_DEFAULTS.warmupRatio;
  if (!(Number.isFinite(ratio) && inBounds(ratio, SETTING_BOUNDS.warmupRatio))) throw new HayateError('ERR_INVALID_ARGUMENT', `warmupRatio must be in ${formatBounds(SETTING_BOUNDS.warmupRatio)}, got ${ratio}`);
  const warmupSteps = o.warmupSteps ?? Math.ceil(ratio * totalUpdates);
  const schedule: LrScheduleOptions = { lr, type: o.type ?? SCHEDULE_DEFAULTS.type, warmupSteps, totalSteps: Math.max(1, totalUpdates) };
  if (o.minLrRatio !== undefined) schedule.minLrRatio = o.minLrRatio;
  validateSchedule(schedule);
  return schedule;
}
