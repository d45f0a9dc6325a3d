/**
 * The one route to a tenant's status, for the CLI (`status`, `list`), the demo and tests. Two sources, each the
 * truth for its part: the workflow for state (its `status` query, and the activity it is retrying now) and the
 * mirror for per-table figures (`_mirror_state`: LSN, rows, last sync; a population's committed rows from its
 * shadow). Sync-session heartbeats are not read: they are rare (heartbeats are billable) and would only repeat
 * the mirror's figures, older.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { statusQuery, workflowIdFor, type TableStatus, type TenantStatus } from '../contract';
import { openMirror } from './adapters';
import type { TenantConfig } from './config/schema';
import type { MirrorStateStore } from './core/types';

export interface TenantReport extends Omit<TenantStatus, 'state'> {
  state: TenantStatus['state'] | 'not started';
  /** The workflow is running (a terminated or completed one reports no state of its own). */
  running: boolean;
  /** The last failure of an activity being retried right now, if it has not recovered since. */
  activityError: string | null;
}

/**
 * The tenant's report. With its configuration, per-table figures come from its mirror; without it (or when the
 * mirror cannot be reached) the workflow's own last-known figures stand.
 */
export async function tenantReport(client: Client, tenantId: string, tenant?: TenantConfig): Promise<TenantReport> {
  const handle = client.workflow.getHandle(workflowIdFor(tenantId));
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return notStarted(tenantId);
    throw err;
  }
  const running = description.status.name === 'RUNNING';
  const status = running ? await handle.query(statusQuery) : stopped(tenantId, description.status.name);
  const report: TenantReport = { ...status, running, activityError: retryingFailure(description.raw.pendingActivities ?? []) };
  if (tenant) await withMirrorFigures(report.tables, openMirror(tenant));
  return report;
}

/** Per-table figures as the mirror records them: committed, so never ahead of what a reader of the mirror sees. */
async function withMirrorFigures(tables: TableStatus[], mirror: MirrorStateStore & { close(): Promise<void> }): Promise<void> {
  try {
    const [state, populations] = await Promise.all([mirror.readState(), mirror.readPopulations()]);
    const recorded = new Map(state.map((s) => [s.table, s]));
    const copied = new Map(populations.map((p) => [p.table, p.rows]));
    for (const table of tables) {
      if (table.state === 'skipped') continue;
      const figures = recorded.get(table.name);
      if (figures) Object.assign(table, { lsn: figures.lsn, rows: figures.rows, lastSyncAt: figures.lastSyncAt });
      const rows = copied.get(table.name);
      if (table.state === 'populating' && rows !== undefined) table.rows = rows;
    }
  } catch {
    // The mirror is unreachable (the workflow's reason and activityError say why): keep the workflow's figures.
  } finally {
    await mirror.close();
  }
}

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

function retryingFailure(pending: PendingActivity[]): string | null {
  let error: string | null = null;
  for (const activity of pending) {
    const failure = activity.lastFailure;
    if (failure?.message && !recoveredSinceFailure(activity)) {
      error = `${activity.activityType?.name ?? 'activity'} attempt ${activity.attempt}: ${failure.message}`;
    }
  }
  return error;
}

/**
 * The server keeps an activity's last failure until the activity ends, even when the retry that followed is
 * running fine. A retry that has heartbeated since it started has recovered: its old failure is history.
 */
function recoveredSinceFailure(pending: PendingActivity): boolean {
  const started = optionalTsToMs(pending.lastStartedTime);
  const heartbeat = optionalTsToMs(pending.lastHeartbeatTime);
  return (
    pending.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED &&
    started !== undefined &&
    heartbeat !== undefined &&
    heartbeat > started
  );
}

function stopped(tenantId: string, status: string): TenantStatus {
  return { tenantId, state: 'paused', reason: `workflow is not running (${status.toLowerCase()})`, tables: [], lastSuccessAt: null, pendingWipe: null, notices: [] };
}

function notStarted(tenantId: string): TenantReport {
  return {
    tenantId,
    state: 'not started',
    reason: `no workflow: run \`tenant-mirror start ${tenantId}\``,
    tables: [],
    lastSuccessAt: null,
    pendingWipe: null,
    notices: [],
    running: false,
    activityError: null,
  };
}
