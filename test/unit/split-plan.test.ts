/**
 * The pure parts of a split population: where a sorted key sample is cut, the ranges between the cuts, and the
 * shadow marker that carries each range's progress (read back, or refused when it is not ours).
 */
import { describe, expect, it } from 'vitest';
import { cutsOf, keyPredicate } from '../../src/postgres/snapshot';
import { rangesOf } from '../../activities/split-population';
import { parseShadowProgress } from '../../src/core/mirror-common';

const sample = (n: number): string[][] => Array.from({ length: n }, (_, i) => [String(i)]);

describe('cutsOf', () => {
  it('cuts a sorted sample at its quantiles', () => {
    expect(cutsOf(sample(100), 4)).toEqual([['25'], ['50'], ['75']]);
    expect(cutsOf(sample(10), 2)).toEqual([['5']]);
  });

  it('gives no cut for one part or a sample too small to tell', () => {
    expect(cutsOf(sample(100), 1)).toEqual([]);
    expect(cutsOf(sample(5), 3)).toEqual([]);
  });

  it('never repeats a cut (a key sampled many times would make an empty range)', () => {
    const skewed = [...Array.from({ length: 90 }, () => ['1', 'a']), ...sample(10).map((k) => ['2', k[0]!])];
    const cuts = cutsOf(skewed, 4);
    expect(cuts).toEqual([['1', 'a']]);
  });
});

describe('rangesOf', () => {
  it('gives ranges open at both ends that meet at each cut', () => {
    expect(rangesOf([['10'], ['20']])).toEqual([{ upTo: ['10'] }, { after: ['10'], upTo: ['20'] }, { after: ['20'] }]);
    expect(rangesOf([])).toEqual([{}]);
  });
});

describe('keyPredicate bounds', () => {
  it('compares the key as a row, below or equal to an upper bound', () => {
    expect(keyPredicate(['a', 'b'], ['integer', 'bigint'], '<=', ['3', '100'])).toBe(`("a", "b") <= ('3'::integer, '100'::bigint)`);
  });
});

describe('parseShadowProgress with ranges', () => {
  const base = { table: 't', schemaHash: 'h', version: '42', lastKey: null, rows: 7, bytes: 70, startedAt: '2026-12-03T00:00:00Z' };
  const ranges = [
    { upTo: ['5'], lastKey: ['5'], rows: 5, bytes: 50, done: true },
    { after: ['5'], lastKey: ['7'], rows: 2, bytes: 20, done: false },
  ];

  it("reads each range's bounds and progress back", () => {
    expect(parseShadowProgress(JSON.stringify({ ...base, ranges }))?.ranges).toEqual(ranges);
    expect(parseShadowProgress(JSON.stringify(base))?.ranges).toBeUndefined();
  });

  it('refuses a marker whose ranges are malformed', () => {
    expect(parseShadowProgress(JSON.stringify({ ...base, ranges: [{ ...ranges[0], done: 'yes' }] }))).toBeNull();
    expect(parseShadowProgress(JSON.stringify({ ...base, ranges: [{ ...ranges[1], after: [5] }] }))).toBeNull();
    expect(parseShadowProgress(JSON.stringify({ ...base, ranges: {} }))).toBeNull();
  });
});
