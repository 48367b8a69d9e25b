// The statistics the benchmark scripts share (ts/bench/stats.ts).
import { describe, expect, it } from 'vitest';
import { median } from '../ts/bench/stats.js';

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones, without reordering its input', () => {
    const xs = [3, 1, 2];
    expect(median(xs)).toBe(2);
    expect(xs).toEqual([3, 1, 2]);
    expect(median([0.75, 0.5, 0.9, 0.7])).toBeCloseTo(0.725, 12);
    expect(median([4])).toBe(4);
    expect(median([])).toBeNaN();
  });
});
