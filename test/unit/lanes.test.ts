import { describe, expect, it } from 'vitest';
import { inLanes } from '../../activities/lanes';
import { laneCount } from '../../activities/session';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('inLanes', () => {
  it('gives each lane the next item when it is free, so a long item does not hold up the rest', async () => {
    let releaseLong!: () => void;
    const long = new Promise<void>((resolve) => (releaseLong = resolve));
    const done: string[] = [];
    const run = inLanes(['a', 'b'], ['long', 's1', 's2', 's3'], async (lane, item) => {
      if (item === 'long') await long;
      else await Promise.resolve();
      done.push(`${lane}:${item}`);
      // The long item ends only once every short one is done: only lane b can have done them.
      if (done.length === 3) releaseLong();
    });
    await run;
    expect(done).toEqual(['b:s1', 'b:s2', 'b:s3', 'a:long']);
  });

  it('puts back the item of a lane that retires, for another lane to do', async () => {
    const done: string[] = [];
    await inLanes(['main', 'extra'], [1, 2, 3, 4], async (lane, item) => {
      if (lane === 'extra') return 'retire';
      await Promise.resolve();
      done.push(`${lane}:${item}`);
    });
    expect(done).toEqual(['main:1', 'main:2', 'main:3', 'main:4']);
  });

  it('stops every lane taking another item after the first failure, lets the one in flight end, and throws that failure', async () => {
    const started: number[] = [];
    let inFlightEnded = false;
    const run = inLanes(['a', 'b'], [1, 2, 3, 4, 5], async (_lane, item, failed) => {
      started.push(item);
      if (item === 1) {
        await tick(5);
        throw new Error('item 1 failed');
      }
      await tick(20);
      expect(failed.aborted).toBe(true);
      inFlightEnded = true;
    });
    await expect(run).rejects.toThrow('item 1 failed');
    expect(started).toEqual([1, 2]);
    expect(inFlightEnded).toBe(true);
  });

  it('stops without an error when asked to', async () => {
    const started: number[] = [];
    let stop = false;
    await inLanes(['a'], [1, 2, 3], async (_lane, item) => {
      started.push(item);
      stop = true;
    }, () => stop);
    expect(started).toEqual([1]);
  });
});

describe('laneCount', () => {
  const tenant = { applyStreams: 3, parallelApplyChanges: 1000 };

  it('spreads tables only when those beyond the largest hold enough changes', () => {
    expect(laneCount(tenant, [{ pending: 50_000 }, { pending: 600 }, { pending: 300 }])).toBe(1);
    expect(laneCount(tenant, [{ pending: 50_000 }, { pending: 600 }, { pending: 400 }])).toBe(3);
    expect(laneCount(tenant, [{ pending: 1000 }, { pending: 1000 }])).toBe(2);
    expect(laneCount(tenant, [{ pending: 1000 }, { pending: 999 }])).toBe(1);
  });

  it('never opens more lanes than tables, nor any when one stream is configured or the source cannot count', () => {
    expect(laneCount(tenant, [{ pending: 5000 }])).toBe(1);
    expect(laneCount({ ...tenant, applyStreams: 1 }, [{ pending: 5000 }, { pending: 5000 }])).toBe(1);
    expect(laneCount(tenant, [{ pending: null }, { pending: null }])).toBe(1);
  });
});
