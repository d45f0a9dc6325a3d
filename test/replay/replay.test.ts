/**
 * Replays every recorded history (test/replay/histories) against today's workflow code. A change that would
 * make a running tenant's workflow non-deterministic fails here, in CI, before it reaches a worker.
 */
import '../support/quiet-runtime';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { HISTORIES_DIR } from '../support/histories';
import { sharedTemporal } from '../support/temporal';

const files = readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json')).sort();

describe('replay of recorded histories', () => {
  it('has histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
  });

  it.each(files)('%s replays deterministically', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, file), 'utf8')));
    expect(history.events?.length).toBeGreaterThan(3);
    await Worker.runReplayHistory({ workflowBundle: { codePath: sharedTemporal().workflowBundlePath } }, history, file.replace(/\.json$/, ''));
  });
});
