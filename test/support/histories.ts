/**
 * Recorded workflow histories for the replay test. `RECORD_HISTORIES=1 npx vitest run test/workflow` rewrites
 * `<name>.json` from the state-machine tests of today's workflow; the `<name>.vN.json` files are histories of
 * earlier versions and are never rewritten: running workflows started by those versions must keep replaying.
 * Re-record only after the replay test passes, never to make it pass (version the workflow with patched() instead).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

export const HISTORIES_DIR = join(process.cwd(), 'test', 'replay', 'histories');

export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  mkdirSync(HISTORIES_DIR, { recursive: true });
  const history = await handle.fetchHistory();
  writeFileSync(join(HISTORIES_DIR, `${name}.json`), historyToJSON(history) + '\n');
}
