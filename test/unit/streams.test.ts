import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { abandonable } from '../../activities/streams';

describe('abandonable source streams', () => {
  it('an error before anyone reads is no uncaught exception, and a later reader still gets it', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const stream = abandonable(new PassThrough());
      stream.destroy(new Error('source connection terminated'));
      await sleep(20);
      expect(uncaught).toEqual([]);
      await expect(
        (async () => {
          for await (const _ of stream) void _;
        })(),
      ).rejects.toThrow('source connection terminated');
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
