// Option checks shared by the trainers: each failure is an ERR_INVALID_ARGUMENT naming the option.
import { HayateError } from '../errors.js';
import { formatBounds, inBounds, type NumberBounds } from '../training-defaults.js';

export function invalid(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

export function checkInt(name: string, v: number | undefined, min: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min) throw invalid(`${name} must be an integer >= ${min}, got ${v}`);
}

export function checkNumber(name: string, v: number | undefined, min: number, max = Infinity, { minOpen = false } = {}): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (minOpen && v === min)) {
    throw invalid(`${name} must be a number in ${minOpen ? '(' : '['}${min}, ${max === Infinity ? '∞)' : `${max}]`}, got ${v}`);
  }
}

/** checkNumber against one of the shared SETTING_BOUNDS. */
export function checkInBounds(name: string, v: number | undefined, bounds: NumberBounds): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || !inBounds(v, bounds)) throw invalid(`${name} must be a number in ${formatBounds(bounds)}, got ${v}`);
}
