/**
 * The one route to a tenant's status, for the CLI (`status`, `list`), the demo and tests. Two sources, each the
 * truth for its part: the workflow for state (its `status` query, and the activity it is retrying now) and the
 * mirror for per-table figures (`_mirror_state`: LSN, rows, last sync; a population's committed rows from its
 * shadow). Sync-session heartbeats are not read: they are rare (heartbeats are billable) and would only repeat
 * the mirror's figures, older.
 */
import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { MIRROR_STATE_KEY, statusQuery, workflowIdFor, type MirrorState, type TableStatus, type TenantStatus } from '../contract';
import { openMirror, openSource } from './adapters';
import { lagSeconds, staleness, type SessionActivity, type Staleness } from './staleness';
import type { TenantConfig } from './config/schema';
import type { MirrorStateStore } from './core/types';
import { discontinuity, versionBelow } from './core/versions';
import { PgChangeSource } from './postgres/source';
import type { DecodingSlotFigures } from './postgres/decoding';

export interface TenantReport extends Omit<TenantStatus, 'state'> {
  /** `stale`: the workflow says mirroring, but nothing has kept the mirror up to date lately (see `stale`). */
  state: TenantStatus['state'] | 'not started' | 'stale';
  /** Why the tenant is stale, and for how long; null when it is not. */
  stale: Staleness | null;
  /** The workflow is running (a terminated or completed one reports no state of its own). */
  running: boolean;
  /** The last failure of an activity being retried right now, if it has not recovered since. */
  activityError: string | null;
  /**
   * A PostgreSQL source with `tracking: logical`: the replication slot and the WAL it keeps at the source (a slot
   * nobody advances fills the source's disk), or null when it cannot be read now. Absent for other sources.
   */
  slot?: DecodingSlotFigures | null;
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
  const { status, answered } = running ? await queryStatus(client, handle, tenantId, description) : { status: stopped(tenantId, description.status.name), answered: true };
  const pending = description.raw.pendingActivities ?? [];
  const report: TenantReport = { ...status, running, stale: null, activityError: retryingFailure(pending) };
  if (!tenant) return report;
  await withMirrorFigures(report.tables, openMirror(tenant), !answered);
  const now = Date.now();
  const reading = report.tables.some((t) => t.state === 'mirroring' && t.mode !== 'refresh') ? await readSource(tenant, report.tables) : null;
  for (const t of report.tables) t.lagSeconds = lagSeconds(t, reading?.version ?? null, now, reading?.quiet.has(t.name) ?? false);
  if (tenant.source.kind === 'postgres' && tenant.source.tracking === 'logical') report.slot = await decodingSlot(tenant);
  if (report.state === 'mirroring') {
    report.stale = staleness({ tables: report.tables, session: sessionActivity(pending), unstarted: unstartedWork(description, pending, now), pollIntervalMs: tenant.pollInterval, now });
    if (report.stale) report.state = 'stale';
  }
  return report;
}

/**
 * The source's current version, and the tables it has nothing for past their LSN in the mirror (a session skips
 * those without a write, so their last sync can be up to a minute old while they are current); null when the
 * source cannot be read quickly (status must not hang on a source).
 */
async function readSource(tenant: TenantConfig, tables: TableStatus[]): Promise<{ version: string; quiet: Set<string> } | null> {
  const source = openSource(tenant);
  const read = async (): Promise<{ version: string; quiet: Set<string> }> => {
    const snapshot = await source.snapshot();
    try {
      const quiet = new Set<string>();
      const behind = tables.filter((t) => t.state === 'mirroring' && t.lsn !== null && versionBelow(t.lsn, snapshot.version));
      if (snapshot.pendingChanges && behind.length > 0) {
        const names = new Set(behind.map((t) => t.name));
        const schemas = new Map((await source.listTables((n) => names.has(n))).tables.map((s) => [s.name, s]));
        for (const t of behind) {
          const schema = schemas.get(t.name);
          if (!schema || t.lsn === null) continue;
          // Nothing past the LSN counts only while the source still holds every change since it (a TRUNCATE or
          // re-enabled tracking empties the range too, and means the mirror is behind until repopulated).
          const minValid = await snapshot.minValidVersion(schema);
          if (minValid === null || discontinuity(t.lsn, snapshot.version, minValid) !== null) continue;
          if ((await snapshot.pendingChanges(schema, t.lsn, 1)) === 0) quiet.add(t.name);
        }
      }
      return { version: snapshot.version, quiet };
    } finally {
      await snapshot.close();
    }
  };
  try {
    return await Promise.race([read(), new Promise<null>((resolve) => setTimeout(() => resolve(null), SOURCE_TIMEOUT_MS).unref())]);
  } catch {
    return null;
  } finally {
    void source.close().catch(() => undefined);
  }
}

/** The source's replication slot figures, or null when they cannot be read quickly. */
async function decodingSlot(tenant: TenantConfig): Promise<DecodingSlotFigures | null> {
  const source = new PgChangeSource({ url: tenant.source.url, tenant: tenant.id, tracking: 'logical', maxConnections: 1 });
  try {
    return await Promise.race([source.decodingSlot(), new Promise<null>((resolve) => setTimeout(() => resolve(null), SOURCE_TIMEOUT_MS).unref())]);
  } catch {
    return null;
  } finally {
    void source.close().catch(() => undefined);
  }
}

function sessionActivity(pending: PendingActivity[]): SessionActivity | null {
  const session = pending.find((p) => p.activityType?.name === 'syncSession');
  if (!session) return null;
  const { PENDING_ACTIVITY_STATE_STARTED, PENDING_ACTIVITY_STATE_CANCEL_REQUESTED } = temporal.api.enums.v1.PendingActivityState;
  return {
    started: session.state === PENDING_ACTIVITY_STATE_STARTED || session.state === PENDING_ACTIVITY_STATE_CANCEL_REQUESTED,
    scheduledAt: optionalTsToMs(session.scheduledTime) ?? null,
    startedAt: optionalTsToMs(session.lastStartedTime) ?? null,
  };
}

/** The workflow's task, or an activity other than the session, handed out and not started by any worker (not one waiting out a retry backoff). */
function unstartedWork(description: WorkflowExecutionDescription, pending: PendingActivity[], now: number): { what: string; since: number } | null {
  const task = description.raw.pendingWorkflowTask;
  if (task && task.state === temporal.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED) {
    const since = optionalTsToMs(task.scheduledTime);
    if (since !== undefined) return { what: "the tenant's workflow task", since };
  }
  const { PENDING_ACTIVITY_STATE_SCHEDULED } = temporal.api.enums.v1.PendingActivityState;
  for (const p of pending) {
    if (p.activityType?.name === 'syncSession' || p.state !== PENDING_ACTIVITY_STATE_SCHEDULED) continue;
    const next = optionalTsToMs(p.nextAttemptScheduleTime);
    if (next !== undefined && next > now) continue;
    const since = Math.max(optionalTsToMs(p.scheduledTime) ?? 0, next ?? 0);
    if (since > 0) return { what: p.activityType?.name ?? 'an activity', since };
  }
  return null;
}

/**
 * The workflow's own status. A query needs a worker to answer it: with none running (the fleet down, which is
 * when status matters most), the state comes from the MirrorState search attribute the workflow keeps, and the
 * tables from the mirror.
 */
async function queryStatus(
  client: Client,
  handle: WorkflowHandle,
  tenantId: string,
  description: WorkflowExecutionDescription,
): Promise<{ status: TenantStatus; answered: boolean }> {
  try {
    const status = await client.withAbortSignal(AbortSignal.timeout(QUERY_TIMEOUT_MS), () => handle.query(statusQuery));
    return { status, answered: true };
  } catch {
    const state = description.typedSearchAttributes.get(MIRROR_STATE_KEY);
    const status: TenantStatus = {
      tenantId,
      state: isMirrorState(state) ? state : 'bootstrapping',
      reason: 'no worker answered the status query (state from the MirrorState search attribute, tables from the mirror)',
      tables: [],
      lastSuccessAt: null,
      pendingWipe: null,
      notices: [],
    };
    return { status, answered: false };
  }
}

const MIRROR_STATES: readonly string[] = ['bootstrapping', 'populating', 'mirroring', 'paused', 'wiping', 'blocked'] satisfies MirrorState[];
function isMirrorState(value: string | undefined): value is MirrorState {
  return value !== undefined && MIRROR_STATES.includes(value);
}

/** Per-table figures as the mirror records them: committed, so never ahead of what a reader of the mirror sees. */
async function withMirrorFigures(tables: TableStatus[], mirror: MirrorStateStore & { close(): Promise<void> }, listAll: boolean): Promise<void> {
  try {
    const [state, populations, cycles] = await Promise.all([mirror.readState(), mirror.readPopulations(), mirror.readLastCycles()]);
    if (listAll) {
      for (const s of state) tables.push({ name: s.table, state: s.lsn === null ? 'pending' : 'mirroring', lsn: null, rows: null, lastSyncAt: null, error: null });
    }
    const recorded = new Map(state.map((s) => [s.table, s]));
    const copied = new Map(populations.map((p) => [p.table, p.rows]));
    const lastCycles = new Map(cycles.map(({ table, ...counts }) => [table, counts]));
    for (const table of tables) {
      if (table.state === 'skipped') continue;
      const figures = recorded.get(table.name);
      if (figures) Object.assign(table, { lsn: figures.lsn, rows: figures.rows, lastSyncAt: figures.lastSyncAt });
      table.lastCycle = lastCycles.get(table.name) ?? null;
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
const SOURCE_TIMEOUT_MS = 5_000;
/** A query waits for a worker's workflow task; a healthy worker answers in milliseconds. */
const QUERY_TIMEOUT_MS = 5_000;

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
    stale: null,
    activityError: null,
  };
}
