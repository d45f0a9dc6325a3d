/**
 * Per-table LSN, rows and last sync as the mirror itself records them (`_mirror_state`): the truth about
 * progress, fresher than the sync session's heartbeat (which is rare, heartbeats being billable).
 */
import { openMirror } from '../adapters';
import type { TenantConfig } from '../config/schema';
import type { TenantStatus } from '../../contract';

export async function withMirrorFigures<T extends Pick<TenantStatus, 'tables'>>(status: T, tenant: TenantConfig | undefined): Promise<T> {
  if (!tenant) return status;
  const mirror = openMirror(tenant);
  try {
    const state = new Map((await mirror.readState()).map((s) => [s.table, s]));
    for (const table of status.tables) {
      const recorded = state.get(table.name);
      if (recorded && table.state !== 'skipped') Object.assign(table, { lsn: recorded.lsn, rows: recorded.rows, lastSyncAt: recorded.lastSyncAt });
    }
  } catch {
    // The mirror is unreachable (status says why elsewhere): keep the workflow's figures.
  } finally {
    await mirror.close();
  }
  return status;
}
