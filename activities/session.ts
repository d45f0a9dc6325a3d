/**
 * The steady state: one long-running activity that loops fetch → apply at the poll interval and returns to the
 * workflow only when it must decide something (a table appeared or went away, a column was added) or at the
 * session's time limit. Restores, expired tracking and incompatible schemas end it with a typed failure.
 * Heartbeats carry live figures for the Temporal UI; they are billable, so they are rare (see cancel-watch.ts),
 * while cancellations (pause, wipe, syncNow) still arrive within a few seconds. An idle cycle writes nothing, so
 * an idle tenant costs almost no history, actions or mirror writes.
 */
import { Context } from '@temporalio/activity';
import { schemaHash } from '../src/core/schema-hash';
import { FailureType, MirrorError } from '../src/core/errors';
import { tableFilter } from '../src/config/load';
import type { ChangeSource, Fence, Mirror, MirrorTableState, SourceSnapshot, TableSchema, Version } from '../src/core/types';
import type { Logger } from '../src/logging';
import type { MirrorMetrics } from '../src/metrics';
import type { TenantConfig } from '../src/config/schema';
import type { SessionEndReason, SessionHeartbeat, SessionInput, SessionResult } from '../contract';
import { continuityBreak } from './decide';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';
import { cancelWatch } from './cancel-watch';
import { abandonable } from './streams';
import { holderOf } from './populate';

/** Even an idle table records a sync this often (or a quarter of the retention, if shorter), so `lastSyncAt` and the retention rule stay truthful. */
const IDLE_TOUCH_MS = 60_000;
/** A heartbeat every 160 s: ~23 billable actions an hour (the workflow's heartbeat timeout is 8 minutes). */
export const SESSION_HEARTBEAT_MS = 160_000;
/** How often the session looks for a cancel request (a description read, not a billable action). */
const LOOK_FOR_CANCEL_MS = 2_000;

interface SessionEnd {
  reason: SessionEndReason;
  detail: string;
  /** Tables the workflow must repopulate (schemaChanged). */
  tables?: string[];
}

interface CycleOutcome {
  end: SessionEnd | null;
  changes: number;
}

export async function syncSession(deps: ActivityDeps, tenantId: string, input: SessionInput): Promise<SessionResult> {
  deps.metrics.sessionStarted();
  try {
    return await session(deps, tenantId, input);
  } finally {
    deps.metrics.sessionEnded(tenantId);
  }
}

async function session(deps: ActivityDeps, tenantId: string, input: SessionInput): Promise<SessionResult> {
  return withFailures({ tenant: tenantId, operation: 'sync' }, () =>
    withSides(deps, tenantId, async ({ tenant, source, mirror }) => {
      const ctx = Context.current();
      const log = deps.logger.child({ tenantId, activity: 'syncSession' });
      const deadline = Date.now() + input.maxDurationMs;
      const figures: SessionHeartbeat = { cycles: 0, changesApplied: 0, lastCycleAt: null, lastSuccessAt: null, tables: [] };
      const watch = cancelWatch(ctx, { everyMs: SESSION_HEARTBEAT_MS, lookEveryMs: LOOK_FOR_CANCEL_MS });
      const synced = new Set(input.tables);
      const expected = new Set([...input.tables, ...(input.others ?? [])]);
      // From here on an older session of this tenant (a timed-out attempt still running somewhere) cannot write.
      const fence = await mirror.takeFence('session', holderOf(deps, ctx));
      deps.metrics.tablesTo(tenantId, 'mirroring', input.tables);

      for (let config = tenant; ; ) {
        // The tenants file is read again each cycle (only when it changed): a new include, batch size or poll
        // interval applies at once; new connection details need new connections, so the workflow starts over.
        const latest = deps.loadTenant(tenantId);
        if (latest.source.url !== tenant.source.url || latest.mirror.url !== tenant.mirror.url || latest.mirror.schema !== tenant.mirror.schema) {
          return result('tablesChanged', 'the connection settings in the configuration changed');
        }
        config = latest;
        const outcome = await cycle({ tenant: config, source, mirror, synced, expected, fence, log, metrics: deps.metrics });
        deps.metrics.cycleDone(tenantId);
        figures.cycles += 1;
        figures.changesApplied += outcome.changes;
        figures.lastCycleAt = new Date().toISOString();
        figures.lastSuccessAt = Date.now();
        const ending = outcome.end !== null || Date.now() >= deadline;
        // Per-table figures cost a read of the mirror's state: only for a heartbeat about to go out, or the result.
        if (ending || watch.due()) figures.tables = await tableFigures(mirror, synced);
        watch.beat(figures);
        if (outcome.end) {
          log.info({ reason: outcome.end.reason, detail: outcome.end.detail }, 'sync session returns to the workflow');
          if (outcome.end.tables?.length) deps.metrics.tablesTo(tenantId, 'pending', outcome.end.tables);
          return result(outcome.end.reason, outcome.end.detail, outcome.end.tables);
        }
        if (Date.now() >= deadline) return result('timeLimit', null);
        await watch.sleep(config.pollInterval);
      }

      function result(reason: SessionEndReason, detail: string | null, tables: string[] = []): SessionResult {
        return {
          reason,
          detail,
          tables,
          cycles: figures.cycles,
          changesApplied: figures.changesApplied,
          lastSuccessAt: figures.lastSuccessAt,
          tableStatus: figures.tables,
        };
      }
    }),
    { metrics: deps.metrics },
  );
}

async function cycle(args: {
  tenant: TenantConfig;
  source: ChangeSource;
  mirror: Mirror;
  /** Tables to keep up to date. */
  synced: Set<string>;
  /** Every table the workflow knows at the source (synced, or refreshed, failed, waiting). */
  expected: Set<string>;
  fence: Fence;
  log: Logger;
  metrics: MirrorMetrics;
}): Promise<CycleOutcome> {
  const { tenant, source, mirror, synced, expected } = args;
  const listed = await source.listTables(tableFilter(tenant.tables));
  // As a set: two source tables may share one name (a collision the bootstrap skipped both of).
  const names = [...new Set(listed.tables.map((t) => t.name))];
  if (names.length !== expected.size || names.some((n) => !expected.has(n))) {
    return { end: { reason: 'tablesChanged', detail: `source tables are now: ${names.join(', ') || 'none'}` }, changes: 0 };
  }
  const state = new Map((await mirror.readState()).map((s) => [s.table, s]));
  // What a table holds once this cycle has applied its changes: the source as of (about) now.
  const snapshotAt = Date.now();
  const snapshot = await source.snapshot();
  let changes = 0;
  try {
    for (const schema of listed.tables.filter((t) => synced.has(t.name))) {
      const tableState = state.get(schema.name);
      if (!tableState || tableState.lsn === null) {
        // The mirror lost the table (restored from an older backup, dropped by hand): bootstrap decides.
        return { end: { reason: 'tablesChanged', detail: `${schema.name} has no LSN in the mirror` }, changes };
      }
      const schemaEnd = await reconcileSchema(mirror, schema, tableState, tenant.id);
      if (schemaEnd) return { end: schemaEnd, changes };
      if (tableState.needsBackfill) {
        // A column added earlier (by a session that did not live to report it): the workflow repopulates.
        return { end: { reason: 'schemaChanged', detail: `${schema.name}: an added column needs its values`, tables: [schema.name] }, changes };
      }
      try {
        changes += await syncTable({ ...args, snapshot, schema, lsn: tableState.lsn, state: tableState });
        args.metrics.caughtUp(tenant.id, schema.name, snapshotAt);
      } catch (err) {
        // DDL holds or rewrote this table: the others go on, this one is read again next cycle.
        if (!(err instanceof MirrorError && err.type === FailureType.SourceBusy)) throw err;
        args.metrics.failed(tenant.id, err.type, 'sync');
        args.log.info({ table: schema.name, reason: err.message }, 'table skipped this cycle');
      }
    }
  } finally {
    await snapshot.close();
  }
  return { end: null, changes };
}

/** One table's changes since its LSN, applied; returns how many rows changed. */
async function syncTable(args: {
  tenant: TenantConfig;
  mirror: Mirror;
  snapshot: SourceSnapshot;
  schema: TableSchema;
  lsn: Version;
  state: MirrorTableState;
  fence: Fence;
  metrics: MirrorMetrics;
}): Promise<number> {
  const { tenant, mirror, snapshot, schema, lsn } = args;
  const minValidVersion = await snapshot.minValidVersion(schema);
  const fingerprint = await snapshot.tableFingerprint(schema);
  const broken = continuityBreak(lsn, args.state.fingerprint, { sourceVersion: snapshot.version, fingerprint, minValidVersion });
  if (broken) throw new MirrorError(broken.type, broken.detail, { tenant: tenant.id, table: schema.name, operation: 'sync', side: 'source' });
  const idleTable = lsn === snapshot.version;
  // Well inside the retention, or the next bootstrap would take an idle table for one not synced in time.
  const touchMs = Math.min(IDLE_TOUCH_MS, Math.floor(tenant.retention / 4));
  const recent = args.state.lastSyncAt !== null && Date.now() - Date.parse(args.state.lastSyncAt) < touchMs;
  if (idleTable && recent) return 0;
  const changes = abandonable(snapshot.changes(schema, lsn));
  try {
    const applied = await mirror.applyChanges(schema, changes, {
      fromVersion: lsn,
      toVersion: snapshot.version,
      fingerprint,
      batchBytes: tenant.batchBytes,
      fence: args.fence,
    });
    args.metrics.rowsApplied(tenant.id, schema.name, applied);
    return applied.upserts + applied.deletes;
  } finally {
    changes.destroy();
  }
}

async function tableFigures(mirror: Mirror, expected: Set<string>): Promise<SessionHeartbeat['tables']> {
  return (await mirror.readState())
    .filter((s) => expected.has(s.table))
    .map((s) => ({ name: s.table, lsn: s.lsn, rows: s.rows, lastSyncAt: s.lastSyncAt }));
}

/**
 * A schema that changed since the table was populated: compatible changes are applied in place (an added column
 * needs its values, so the workflow repopulates that table); an incompatible one has already replaced the table.
 */
async function reconcileSchema(
  mirror: Mirror,
  schema: TableSchema,
  state: MirrorTableState,
  tenantId: string,
): Promise<SessionEnd | null> {
  if (state.schemaHash === schemaHash(schema)) return null;
  const result = await mirror.applySchema(schema);
  if (result.outcome === 'incompatible') {
    throw new MirrorError(FailureType.IncompatibleSchema, `incompatible schema change: ${result.reason}; table replaced, repopulating`, {
      tenant: tenantId,
      table: schema.name,
      operation: 'apply schema',
      side: 'mirror',
    });
  }
  if (result.outcome === 'altered' && result.needsBackfill) {
    // The hash is already updated, so the next bootstrap sees nothing to do: the workflow has to be told.
    return { reason: 'schemaChanged', detail: `${schema.name}: ${result.changes.join('; ')}`, tables: [schema.name] };
  }
  return null;
}
