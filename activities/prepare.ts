/**
 * Bootstrapping: check both sides answer, make sure tracking and mirror tables exist for every mirrored table,
 * and decide per table whether it continues from its LSN or must be (re)populated. Returns a plan: metadata only.
 *
 * One table is one failure domain: a table whose set-up fails in a way that belongs to it (a type, DDL the
 * mirror refuses, a name taken by a partner's table, a lock held by DDL) is returned as `failed` and the others
 * go on. Tables still waiting out an earlier failure's backoff are left alone (`wait`).
 */
import type { TenantConfig } from '../src/config/schema';
import { MirrorError } from '../src/core/errors';
import type { ChangeSource, Mirror, MirrorTableState, SourceSnapshot, TableSchema } from '../src/core/types';
import { failureAction, type TablePlan, type TableState, type TenantPlan } from '../contract';
import type { MirrorMetrics } from '../src/metrics';
import { selectTables } from '../src/selection';
import { decideTable } from './decide';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';
import type { Logger } from '../src/logging';

export async function prepareTenant(deps: ActivityDeps, tenantId: string, opts: { waiting?: string[] } = {}): Promise<TenantPlan> {
  return withFailures({ tenant: tenantId, operation: 'prepare' }, () =>
    withSides(deps, tenantId, async ({ tenant, source, mirror }) => {
      const log = deps.logger.child({ tenantId, activity: 'prepareTenant' });
      await Promise.all([source.ping(), mirror.ping()]);
      await mirror.ensureState();
      const pruned = await mirror.pruneLog(tenant.mirror.logRetention);
      if (pruned > 0) log.info({ rows: pruned }, '_mirror_log rows older than mirror.logRetention deleted');
      await source.cleanup(tenant.retention);

      const everything = await source.listTables(() => true);
      const { tables, skipped } = selectTables(everything, tenant, mirror);
      const mirroredBefore = new Set((await mirror.readState()).map((s) => s.table));
      const dropped = await dropGone(mirror, new Set([...everything.tables, ...everything.skipped].map((t) => t.name)), log);
      await stopTracking(source, mirror, mirroredBefore, new Set(tables.filter((t) => t.primaryKey.length > 0).map((t) => t.name)), log);

      const waiting = new Set(opts.waiting ?? []);
      const setUp = new Map<string, TablePlan | null>();
      for (const table of tables) {
        if (!waiting.has(table.name)) setUp.set(table.name, await setUpTable(source, mirror, table, tenant, log, deps.metrics));
      }
      const state = new Map((await mirror.readState()).map((s) => [s.table, s]));
      const snapshot = await source.snapshot();
      const plans: TablePlan[] = [];
      let sourceRestored: string | null = null;
      try {
        for (const table of tables) {
          const plan = waiting.has(table.name) ? { name: table.name, action: 'wait' as const } : (setUp.get(table.name) ?? (await decide(table, state.get(table.name), snapshot, tenant)));
          if (plan.reason === 'source restored') sourceRestored ??= plan.detail ?? 'source restored';
          if (plan.action === 'populate' && plan.reason !== 'new table') log.warn({ table: table.name, reason: plan.reason, detail: plan.detail }, 'table needs repopulating');
          plans.push(plan);
        }
      } finally {
        await snapshot.close();
      }
      if (sourceRestored !== null) {
        // A restore is the source's, not a table's: every table is repopulated, also one whose LSN happens to be
        // older than the restore point (a table with nothing to apply keeps its LSN for up to a minute).
        for (const [i, plan] of plans.entries()) {
          if (plan.action === 'mirror') plans[i] = { ...plan, action: 'populate', reason: 'source restored', detail: `the source was restored: ${sourceRestored}` };
        }
      }
      const schemas = new Map(tables.map((t) => [t.name, t]));
      for (const plan of plans) {
        const schema = schemas.get(plan.name);
        if (plan.action === 'populate' && schema) plan.estimatedRows = await source.estimateRows(schema);
      }
      recordStates(deps.metrics, tenantId, plans, skipped);
      return {
        policy: { pollIntervalMs: tenant.pollInterval, retentionMs: tenant.retention, onSourceRestore: tenant.onSourceRestore },
        tables: plans,
        skipped,
        dropped,
        sourceRestored,
      };
    }),
    { metrics: deps.metrics },
  );
}

/** The plan as table states (what the workflow will show): tables to populate are pending until a population starts. */
function recordStates(metrics: MirrorMetrics, tenantId: string, plans: TablePlan[], skipped: { name: string }[]): void {
  const stateOf: Record<TablePlan['action'], TableState> = { populate: 'pending', mirror: 'mirroring', failed: 'failed', wait: 'failed' };
  const states = new Map<string, TableState>(skipped.map((s) => [s.name, 'skipped']));
  for (const plan of plans) states.set(plan.name, stateOf[plan.action]);
  metrics.tableStates(tenantId, states);
}

/** Mirror tables whose source table is gone are dropped (ours only); one merely excluded by configuration is left alone. */
async function dropGone(mirror: Mirror, existing: Set<string>, log: Logger): Promise<string[]> {
  const dropped = (await mirror.readState()).filter((s) => !existing.has(s.table)).map((s) => s.table);
  for (const name of dropped) {
    log.info({ table: name }, 'source table is gone: dropping it from the mirror');
    await mirror.dropTable(name, 'the source table is gone');
  }
  return dropped;
}

/**
 * Nothing of ours stays on a source table this tenant no longer mirrors (excluded by configuration, dropped, or
 * now without a key). Only tables this tenant's mirror registered are considered: other tenants may track other
 * tables of the same source database. The mirror copy of a table that still exists is left to the partner.
 */
async function stopTracking(source: ChangeSource, mirror: Mirror, mirroredBefore: Set<string>, tracked: Set<string>, log: Logger): Promise<void> {
  for (const name of await source.untrack((n) => mirroredBefore.has(n) && !tracked.has(n))) {
    log.info({ table: name }, 'change tracking removed: the table is no longer mirrored');
    await mirror.release(name);
  }
}

/**
 * Tracking at the source and the table's shape in the mirror. Returns the table's plan when the set-up decides it
 * (a new table, a replaced shape, a failure of this table alone), or null when the usual decision applies.
 */
async function setUpTable(
  source: ChangeSource,
  mirror: Mirror,
  table: TableSchema,
  tenant: TenantConfig,
  log: Logger,
  metrics: MirrorMetrics,
): Promise<TablePlan | null> {
  const mode = table.primaryKey.length > 0 ? 'tracked' : 'refresh';
  try {
    if (mode === 'tracked' && (await source.enableTracking(table, tenant.retention))) log.info({ table: table.name }, 'change tracking enabled');
    const result = await mirror.applySchema(table);
    const due = mode === 'refresh' ? { refreshDueAt: Date.now() + tenant.refreshInterval } : {};
    const base = { name: table.name, mode, ...due, ...(result.notes?.length ? { notes: result.notes } : {}) } as const;
    if (result.notes?.length) log.warn({ table: table.name, notes: result.notes }, 'columns stored differently than received');
    switch (result.outcome) {
      case 'created':
        return { ...base, action: 'populate', reason: 'new table', detail: 'created from the received schema' };
      case 'incompatible':
        log.warn({ table: table.name, reason: result.reason }, 'incompatible schema change: table replaced');
        return { ...base, action: 'populate', reason: 'schema replaced', detail: result.reason };
      case 'altered':
        log.info({ table: table.name, changes: result.changes }, 'schema altered in place');
        return result.needsBackfill ? { ...base, action: 'populate', reason: 'column added', detail: result.changes.join('; ') } : null;
      case 'unchanged':
        return null;
    }
  } catch (err) {
    if (!(err instanceof MirrorError) || !belongsToTable(err)) throw err;
    log.warn({ table: table.name, type: err.type, message: err.message }, 'table set-up failed; the other tables go on');
    metrics.failed(tenant.id, err.type, 'prepare');
    return { name: table.name, mode, action: 'failed', failure: { type: err.type, message: err.message } };
  }
}

/** A failure of one table's set-up that must not hold the others back: its own failure, or a lock held by DDL. */
function belongsToTable(err: MirrorError): boolean {
  return failureAction(err.type) === 'blockTable' || err.type === 'SourceBusy' || err.type === 'MirrorBusy';
}

async function decide(table: TableSchema, state: MirrorTableState | undefined, snapshot: SourceSnapshot, tenant: TenantConfig): Promise<TablePlan> {
  const keyless = table.primaryKey.length === 0;
  const verdict = decideTable({
    state,
    sourceVersion: snapshot.version,
    minValidVersion: keyless ? null : await snapshot.minValidVersion(table),
    fingerprint: await snapshot.tableFingerprint(table),
    retentionMs: tenant.retention,
    now: Date.now(),
    ...(keyless ? { refreshMs: tenant.refreshInterval } : {}),
  });
  const mode = keyless ? 'refresh' : 'tracked';
  if (verdict.action === 'populate') {
    // A refresh starting now is due again one interval later (counted from now: a little early, never late).
    const due = keyless ? { refreshDueAt: Date.now() + tenant.refreshInterval } : {};
    return { name: table.name, mode, action: 'populate', reason: verdict.reason, detail: verdict.detail, ...due };
  }
  const refreshDueAt = keyless && state?.populatedAt ? Date.parse(state.populatedAt) + tenant.refreshInterval : undefined;
  return { name: table.name, mode, action: 'mirror', ...(refreshDueAt !== undefined ? { refreshDueAt } : {}) };
}
