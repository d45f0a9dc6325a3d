import { describe, expect, it } from 'vitest';
import { inLanes } from '../../activities/lanes';
import { laneCount } from '../../activities/session';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('inLanes', () => {
  it('gives each lane the next item when it is free, so a long item does not hold up the rest', async () => {
    const done: string[] = [];
    await inLanes(['a', 'b'], [30, 5, 5, 5], async (lane, ms) => {
      await tick(ms);
      done.push(`${lane}:${ms}`);
    });
    // Lane a takes the long item; lane b does the three short ones meanwhile.
    expect(done).toEqual(['b:5', 'b:5', 'b:5', 'a:30']);
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
