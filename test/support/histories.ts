/**
 * Recorded workflow histories for the replay test. `RECORD_HISTORIES=1 npx vitest run test/workflow` rewrites
 * them from the state-machine tests; commit the result only when a workflow change is meant to be incompatible
 * (and then version the workflow), never to make the replay test pass.
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
