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
import type { ChangeSource, Fence, Mirror, MirrorTableState, ShareableSnapshot, SourceFingerprint, SourceSnapshot, SourceTables, TableSchema, Version } from '../src/core/types';
import type { Logger } from '../src/logging';
import type { MirrorMetrics } from '../src/metrics';
import type { TenantConfig } from '../src/config/schema';
import type { SessionEndReason, SessionHeartbeat, SessionInput, SessionResult } from '../contract';
import { continuityBreak, fingerprintChanges } from './decide';
import { withSides, type ActivityDeps, type Sides } from './deps';
import { withFailures } from './failure';
import { cancelWatch, type CancelWatch } from './cancel-watch';
import { abandonable } from './streams';
import { inLanes } from './lanes';
import { holderOf } from './populate';

/** Even an idle table records a sync this often (or a quarter of the retention, if shorter), so `lastSyncAt` and the retention rule stay truthful. */
const IDLE_TOUCH_MS = 60_000;
/**
 * A heartbeat every 5 minutes: 12 billable actions an hour. Its timeout (11 minutes, activity-options.ts) is only
 * the last resort for a dead worker: the fleet's reaper moves a dead worker's sessions within seconds.
 */
export const SESSION_HEARTBEAT_MS = 5 * 60_000;
/**
 * After a cycle that applied changes, the source is asked this soon whether more have committed (or, when it cannot
 * tell, the next cycle starts): changes that committed during the apply are a backlog already, and waiting them
 * out would be most of the lag under load.
 */
const BUSY_POLL_MS = 50;
/** Between two long polls of the workflow's history for a cancel request (each held up to 20 s by the server). */
const LOOK_GAP_MS = 5_000;

interface SessionEnd {
  reason: SessionEndReason;
  detail: string;
  /** Tables the workflow must repopulate (schemaChanged). */
  tables?: string[];
}

/** What a session remembers between its cycles, to say something once rather than every cycle. */
interface SessionNotes {
  siblingsRefused: boolean;
}

interface CycleOutcome {
  end: SessionEnd | null;
  changes: number;
  /** The version the cycle's snapshot read up to (every change below it is applied), when it opened one. */
  version?: Version;
  /** The tables it kept up to date, for the wake check between polls. */
  tables?: TableSchema[];
  /** Whether the cycle's listing was the last one given again (ListOptions.reuse), for the debug log. */
  listing?: 'reused' | 'new';
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
    withSides(deps, tenantId, async (sides) => {
      const ctx = Context.current();
      // From here on an older session of this tenant (a timed-out attempt still running somewhere) cannot write.
      const fence = await sides.mirror.takeFence('session', holderOf(deps, ctx));
      deps.metrics.tablesTo(tenantId, 'mirroring', input.tables);
      const watch = cancelWatch(ctx, { everyMs: SESSION_HEARTBEAT_MS, gapMs: LOOK_GAP_MS });
      const progress = { cycles: 0 };
      try {
        return await runSession({ deps, tenantId, input, sides, fence, watch, progress });
      } catch (err) {
        if (progress.cycles > 0 && err instanceof MirrorError && err.type === FailureType.Unavailable) {
          throw new MirrorError(FailureType.Interrupted, `interrupted after ${progress.cycles} cycles: ${err.message}`, {}, { cause: err });
        }
        if (err instanceof MirrorError && err.type === FailureType.Fenced) {
          // Two sessions of one tenant at once (an attempt given up on while it still ran): the newer one writes.
          deps.logger.warn({ tenantId, activity: 'syncSession', attempt: ctx.info.attempt, type: err.type, message: err.message }, 'a newer session took over: this one stops without writing');
        }
        throw err;
      } finally {
        watch.close();
      }
    }),
    { metrics: deps.metrics },
  );
}

/** Cycles until something needs the workflow's decision, the time limit, or the worker drains. */
async function runSession(args: {
  deps: ActivityDeps;
  tenantId: string;
  input: SessionInput;
  sides: Sides;
  fence: Fence;
  watch: CancelWatch;
  /** Cycles completed by this attempt, for the caller to tell a fresh outage from one it started in. */
  progress: { cycles: number };
}): Promise<SessionResult> {
  const { deps, tenantId, input, fence, watch } = args;
  const { tenant, source, mirror } = args.sides;
  const log = deps.logger.child({ tenantId, activity: 'syncSession' });
  const deadline = Date.now() + input.maxDurationMs;
  const figures: SessionHeartbeat = { cycles: 0, changesApplied: 0, lastCycleAt: null, lastSuccessAt: null, tables: [] };
  const notes: SessionNotes = { siblingsRefused: false };
  const synced = new Set(input.tables);
  const expected = new Set([...input.tables, ...(input.others ?? [])]);
  const result = (reason: SessionEndReason, detail: string | null, tables: string[] = []): SessionResult => ({
    reason,
    detail,
    tables,
    cycles: figures.cycles,
    changesApplied: figures.changesApplied,
    lastSuccessAt: figures.lastSuccessAt,
    tableStatus: figures.tables,
  });

  for (;;) {
    stopIfDraining(deps, tenantId);
    // The tenants file is read again each cycle (only when it changed): a new include, batch size or poll
    // interval applies at once; new connection details need new connections, so the workflow starts over.
    const config = deps.loadTenant(tenantId);
    if (config.source.url !== tenant.source.url || config.mirror.url !== tenant.mirror.url || config.mirror.schema !== tenant.mirror.schema) {
      return result('tablesChanged', 'the connection settings in the configuration changed');
    }
    const cycleStarted = Date.now();
    // The pools were sized for the streams the session opened with: more lanes than that would wait for connections.
    const cycleConfig = { ...config, applyStreams: Math.min(config.applyStreams, tenant.applyStreams) };
    const outcome = await cycle({ tenant: cycleConfig, source, mirror, synced, expected, fence, log, notes, draining: deps.draining, metrics: deps.metrics });
    log.debug({ ms: Date.now() - cycleStarted, changes: outcome.changes, listing: outcome.listing }, 'cycle');
    deps.metrics.cycleDone(tenantId);
    figures.cycles += 1;
    args.progress.cycles += 1;
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
    await waitForChanges({ config, source, watch, outcome, draining: deps.draining });
  }
}

/**
 * Until the next cycle. After a cycle that found nothing: the poll interval, cut short as soon as the source says a
 * cycle would now find committed changes (checked every `wakeCheck`), so the lag after a quiet spell is the
 * check's period, not the poll's. After a cycle that applied changes, the first check comes BUSY_POLL_MS later: a
 * backlog that built up during the apply is read at once, while a tenant whose writes were all applied (most
 * tenants, most of the time) pays one small query instead of an empty cycle. The check writes nothing and costs
 * no Temporal action; a source that cannot answer is simply polled (after a busy cycle, BUSY_POLL_MS later).
 */
async function waitForChanges(args: { config: TenantConfig; source: ChangeSource; watch: CancelWatch; outcome: CycleOutcome; draining?: AbortSignal | undefined }): Promise<void> {
  const { config, source, watch, outcome } = args;
  const busy = outcome.changes > 0;
  const end = Date.now() + config.pollInterval;
  const check = config.wakeCheck;
  const { version, tables } = outcome;
  if (!source.changesPending || check <= 0 || check >= config.pollInterval || version === undefined || !tables?.length) {
    await watch.sleep(busy ? Math.min(BUSY_POLL_MS, config.pollInterval) : config.pollInterval, args.draining);
    return;
  }
  let next = busy ? Math.min(BUSY_POLL_MS, check) : check;
  while (Date.now() < end && !args.draining?.aborted) {
    await watch.sleep(Math.min(next, end - Date.now()), args.draining);
    next = check;
    if (Date.now() >= end) return;
    const pending = await source.changesPending(tables, version);
    if (pending === true) return;
    if (pending === null) {
      if (!busy) await watch.sleep(end - Date.now(), args.draining);
      return;
    }
  }
}

interface CycleArgs {
  tenant: TenantConfig;
  source: ChangeSource;
  mirror: Mirror;
  /** Tables to keep up to date. */
  synced: Set<string>;
  /** Every table the workflow knows at the source (synced, or refreshed, failed, waiting). */
  expected: Set<string>;
  fence: Fence;
  log: Logger;
  notes: SessionNotes;
  draining?: AbortSignal | undefined;
  metrics: MirrorMetrics;
}

/**
 * One cycle. Its listing is usually the last cycle's again, when the source can tell that nothing listed changed
 * since (catalog.ts, CatalogMemo): a change to a listed table is seen at its commit; a table that appeared, seconds
 * later (at most five minutes), as `tablesChanged` then.
 */
async function cycle(args: CycleArgs): Promise<CycleOutcome> {
  const filter = tableFilter(args.tenant.tables);
  const listed = await args.source.listTables(filter, { reuse: true });
  try {
    return { ...(await cycleOn(args, listed)), listing: listed.reused ? 'reused' : 'new' };
  } catch (err) {
    if (!listed.reused || !mayBeStale(err)) throw err;
    // The listing was an earlier cycle's, and DDL committed since may be what failed (one the catalog counts do not
    // show yet). A new listing decides; when it shows nothing new, or cannot be read, the error stands.
    const fresh = await args.source.listTables(filter).catch(() => null);
    if (!fresh || sameTables(fresh, listed)) throw err;
    args.log.info({ reason: err instanceof Error ? err.message : String(err) }, 'a cycle on the last listing failed, and the tables changed since: the cycle runs again on a new one');
    return { ...(await cycleOn(args, fresh)), listing: 'new' };
  }
}

function sameTables(a: SourceTables, b: SourceTables): boolean {
  return JSON.stringify([a.tables, a.skipped]) === JSON.stringify([b.tables, b.skipped]);
}

/** Failures about a table's data or shape; not the ones about connections, locks or who may write. */
function mayBeStale(err: unknown): boolean {
  return !(err instanceof MirrorError && STATELESS_FAILURES.has(err.type));
}

const STATELESS_FAILURES: ReadonlySet<string> = new Set([
  FailureType.Fenced,
  FailureType.WorkerLost,
  FailureType.Interrupted,
  FailureType.Unavailable,
  FailureType.SourceBusy,
  FailureType.MirrorBusy,
  FailureType.AuthFailed,
  FailureType.BadConfig,
]);

async function cycleOn(args: CycleArgs, listed: SourceTables): Promise<CycleOutcome> {
  const { tenant, source, mirror, synced, expected } = args;
  // As a set: two source tables may share one name (a collision the bootstrap skipped both of).
  const names = [...new Set(listed.tables.map((t) => t.name))];
  if (names.length !== expected.size || names.some((n) => !expected.has(n))) {
    return { end: { reason: 'tablesChanged', detail: `source tables are now: ${names.join(', ') || 'none'}` }, changes: 0 };
  }
  const state = new Map((await mirror.readState()).map((s) => [s.table, s]));
  // What a table holds once this cycle has applied its changes: the source as of (about) now.
  const snapshotAt = Date.now();
  const snapshot = await source.snapshot();
  const tables = listed.tables.filter((t) => synced.has(t.name));
  let changes = 0;
  try {
    const work: TableWork[] = [];
    for (const schema of tables) {
      // Draining: what is committed stays; the rest of this cycle is the next session's.
      if (args.draining?.aborted) break;
      const tableState = state.get(schema.name);
      const lsn = tableState?.lsn ?? null;
      if (!tableState || lsn === null) {
        // The mirror lost the table (restored from an older backup, dropped by hand): bootstrap decides.
        return { end: { reason: 'tablesChanged', detail: `${schema.name} has no LSN in the mirror` }, changes };
      }
      const schemaEnd = await reconcileSchema(mirror, schema, tableState, tenant.id);
      if (schemaEnd) return { end: schemaEnd, changes };
      if (tableState.needsBackfill) {
        // A column added earlier (by a session that did not live to report it): the workflow repopulates.
        return { end: { reason: 'schemaChanged', detail: `${schema.name}: an added column needs its values`, tables: [schema.name] }, changes };
      }
      const planned = await skippingBusy(args, schema, () => planTable({ tenant, snapshot, schema, lsn, state: tableState }));
      if (planned === null) args.metrics.caughtUp(tenant.id, schema.name, snapshotAt);
      else if (planned !== 'skipped') work.push(planned);
    }
    changes = await applyTables({ ...args, snapshot, snapshotAt, work });
  } finally {
    await snapshot.close();
  }
  return { end: null, changes, version: snapshot.version, tables: tables.filter((t) => t.primaryKey.length > 0) };
}

/** One table's part of a cycle, decided on the cycle's snapshot before anything is applied. */
interface TableWork {
  schema: TableSchema;
  lsn: Version;
  fingerprint: SourceFingerprint;
  /** Tracked changes in range, counted up to a limit (pendingLimit); null when the source cannot count them. */
  pending: number | null;
}

/**
 * A table's continuity checked (a break is the typed failure the workflow acts on) and its backlog counted; null
 * when there is nothing to apply: no mirror transaction at all. Its LSN then stays behind until the next touch,
 * which is as true: the table holds the source as of either version.
 */
async function planTable(args: { tenant: TenantConfig; snapshot: SourceSnapshot; schema: TableSchema; lsn: Version; state: MirrorTableState }): Promise<TableWork | null> {
  const { tenant, snapshot, schema, lsn } = args;
  const minValidVersion = await snapshot.minValidVersion(schema);
  const fingerprint = await snapshot.tableFingerprint(schema);
  const broken = continuityBreak(lsn, args.state.fingerprint, { sourceVersion: snapshot.version, fingerprint, minValidVersion });
  if (broken) throw new MirrorError(broken.type, broken.detail, { tenant: tenant.id, table: schema.name, operation: 'sync', side: 'source' });
  const pending = lsn === snapshot.version ? 0 : snapshot.pendingChanges ? await snapshot.pendingChanges(schema, lsn, pendingLimit(tenant)) : null;
  // Well inside the retention, or the next bootstrap would take an idle table for one not synced in time.
  const touchMs = Math.min(IDLE_TOUCH_MS, Math.floor(tenant.retention / 4));
  const recent = args.state.lastSyncAt !== null && Date.now() - Date.parse(args.state.lastSyncAt) < touchMs;
  if (recent && pending === 0) return null;
  return { schema, lsn, fingerprint, pending };
}

/**
 * Counting further than this only orders the largest tables among themselves, which the lanes do not need; with
 * one lane only "anything at all" matters.
 */
function pendingLimit(tenant: TenantConfig): number {
  return tenant.applyStreams < 2 ? 1 : 10 * tenant.parallelApplyChanges;
}

/**
 * The cycle's tables applied, one after another on the cycle's snapshot, or — for a backlog worth it — largest
 * first over `applyStreams` lanes, each further lane reading a sibling of the snapshot (the same version, the
 * same rows) and writing on its own mirror connection. Every table's LSN still moves in its own commit. Returns
 * how many rows changed.
 */
async function applyTables(args: {
  tenant: TenantConfig;
  mirror: Mirror;
  snapshot: SourceSnapshot;
  snapshotAt: number;
  work: TableWork[];
  fence: Fence;
  log: Logger;
  notes: SessionNotes;
  draining?: AbortSignal | undefined;
  metrics: MirrorMetrics;
}): Promise<number> {
  const { tenant, snapshot, work } = args;
  let changes = 0;
  const applyOne = async (on: SourceSnapshot, item: TableWork): Promise<void | 'retire'> => {
    let applied: number | 'skipped';
    try {
      applied = await skippingBusy(args, item.schema, () => applyTable({ ...args, planned: snapshot, snapshot: on, work: item }));
    } catch (err) {
      // An extra lane whose mirror connection the cap or the server refused costs only the parallelism: its
      // table goes back to the queue (nothing of it committed past its LSN, which only the last batch moves).
      if (on !== snapshot && err instanceof MirrorError && (err.type === FailureType.MirrorBusy || err.type === FailureType.Unavailable)) {
        args.log.info({ table: item.schema.name, reason: err.message }, 'an extra lane stops: its table is applied by another');
        return 'retire';
      }
      throw err;
    }
    if (applied === 'skipped') return;
    changes += applied;
    args.metrics.caughtUp(tenant.id, item.schema.name, args.snapshotAt);
  };
  const siblings = args.draining?.aborted ? [] : await siblingsFor(args, laneCount(tenant, work) - 1);
  try {
    const order = siblings.length > 0 ? [...work].sort((a, b) => (b.pending ?? 0) - (a.pending ?? 0)) : work;
    if (siblings.length > 0) args.log.debug({ lanes: siblings.length + 1, tables: work.length }, 'tables applied in parallel');
    await inLanes([snapshot, ...siblings], order, applyOne, () => args.draining?.aborted === true);
  } finally {
    await Promise.all(siblings.map((s) => s.close()));
  }
  return changes;
}

/** More than one lane only when the tables beyond the largest (which one lane takes anyway) hold enough changes. */
export function laneCount(tenant: Pick<TenantConfig, 'applyStreams' | 'parallelApplyChanges'>, work: Pick<TableWork, 'pending'>[]): number {
  if (tenant.applyStreams < 2 || work.length < 2) return 1;
  const counts = work.map((w) => w.pending ?? 0).sort((a, b) => b - a);
  const beyondLargest = counts.slice(1).reduce((n, c) => n + c, 0);
  return beyondLargest >= tenant.parallelApplyChanges ? Math.min(tenant.applyStreams, work.length) : 1;
}

/**
 * `count` siblings of the cycle's snapshot, or none when it has none to give. A source that refuses another
 * connection (its limit reached) costs only the parallelism: the cycle goes on in one lane. (An export that fails
 * aborts the snapshot's own transaction too: the cycle then fails at its next read, and the session is retried.)
 */
async function siblingsFor(args: { snapshot: SourceSnapshot; log: Logger; notes: SessionNotes }, count: number): Promise<SourceSnapshot[]> {
  if (count < 1 || !isShareable(args.snapshot)) return [];
  try {
    return await args.snapshot.siblings(count);
  } catch (err) {
    // Once a session: a source at its connection limit would refuse every large cycle.
    if (!args.notes.siblingsRefused) {
      args.notes.siblingsRefused = true;
      args.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'no sibling snapshot: large cycles apply their tables one after another');
    }
    return [];
  }
}

function isShareable(snapshot: SourceSnapshot): snapshot is ShareableSnapshot {
  return 'siblings' in snapshot && typeof snapshot.siblings === 'function';
}

/** `fn` for one table, or 'skipped' when DDL holds or rewrote it: the others go on, this one is read again next cycle. */
async function skippingBusy<T>(args: { tenant: TenantConfig; log: Logger; metrics: MirrorMetrics }, schema: TableSchema, fn: () => Promise<T>): Promise<T | 'skipped'> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof MirrorError && err.type === FailureType.SourceBusy)) throw err;
    args.metrics.failed(args.tenant.id, err.type, 'sync');
    args.log.info({ table: schema.name, reason: err.message }, 'table skipped this cycle');
    return 'skipped';
  }
}

/** One table's changes since its LSN, applied; returns how many rows changed. */
async function applyTable(args: {
  tenant: TenantConfig;
  mirror: Mirror;
  /** The snapshot the table was planned on; `snapshot` reads it (the same one, or a sibling). */
  planned: SourceSnapshot;
  snapshot: SourceSnapshot;
  work: TableWork;
  fence: Fence;
  metrics: MirrorMetrics;
}): Promise<number> {
  const { tenant, mirror, snapshot, work } = args;
  if (snapshot !== args.planned && fingerprintChanges(work.fingerprint, await snapshot.tableFingerprint(work.schema)).length > 0) {
    // A sibling finds the table by its name again: renamed or recreated since the plan, it is not the table planned.
    throw new MirrorError(FailureType.SourceBusy, 'the table was renamed or recreated while the cycle ran', { tenant: tenant.id, table: work.schema.name, operation: 'sync', side: 'source' });
  }
  const changes = abandonable(snapshot.changes(work.schema, work.lsn));
  try {
    const applied = await mirror.applyChanges(work.schema, changes, {
      fromVersion: work.lsn,
      toVersion: snapshot.version,
      fingerprint: work.fingerprint,
      batchBytes: tenant.batchBytes,
      fence: args.fence,
    });
    args.metrics.rowsApplied(tenant.id, work.schema.name, applied);
    return applied.upserts + applied.deletes;
  } finally {
    changes.destroy();
  }
}

/** A draining worker hands the session back, between two tables' commits: the server retries it at once elsewhere. */
function stopIfDraining(deps: ActivityDeps, tenantId: string): void {
  if (deps.draining?.aborted) {
    throw new MirrorError(FailureType.WorkerLost, 'the worker is shutting down: the session goes on on another worker', { tenant: tenantId, operation: 'sync' });
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
