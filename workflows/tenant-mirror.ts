/**
 * One durable workflow per tenant: the mirror's lifecycle as a state machine.
 *
 *   bootstrapping ─► populating ─► mirroring ─┐
 *        ▲                                    │ (a table to repopulate, a new table, a restore, a time limit)
 *        └────────────────────────────────────┘
 *   paused (pause signal, or a restored source under policy "pause"), wiping (forceWipe, expiry),
 *   blocked (bad config or credentials: waits, does not hammer)
 *
 * The workflow decides; activities move rows. The steady state is one long-running sync-session activity, so an
 * idle tenant costs a handful of history events per session instead of ~11 per poll.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ActivityFailure,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  patched,
} from '@temporalio/workflow';
import type { TenantActivities } from '../activities';
import {
  forceWipeUpdate,
  MIRROR_STATE_KEY,
  pauseSignal,
  resumeSignal,
  statusQuery,
  syncNowSignal,
  TENANT_ID_KEY,
  type CarriedState,
  type ForceWipeAck,
  type MirrorState,
  type SessionResult,
  type TableStatus,
  type TenantPlan,
  type TenantPolicy,
  type TenantStatus,
  type TenantWorkflowInput,
} from './definitions';
import { failureTypeOf, failureMessage, isBlockingFailure, isRepopulateFailure } from './failures';

/** A sync session returns at least this often, so the workflow re-reads configuration and catalog. */
const SESSION_MAX_MS = 60 * 60 * 1000;
/** While blocked, look again this often (or at once on resume/syncNow). */
const BLOCKED_RECHECK_MS = 10 * 60 * 1000;
/** Tables populated at once (source snapshots and mirror connections per tenant grow with it). */
const POPULATION_LANES = 2;
/** Patch id: populations run in POPULATION_LANES lanes instead of one after another. */
const PARALLEL_POPULATION = 'parallel-population';
const DEFAULT_POLICY: TenantPolicy = { pollIntervalMs: 5_000, retentionMs: 7 * 24 * 3600 * 1000, onSourceRestore: 'repopulate' };

export async function tenantMirrorWorkflow(input: TenantWorkflowInput): Promise<void> {
  const { tenantId } = input;
  const carried: CarriedState = input.carried ?? {
    paused: false,
    pauseReason: null,
    pendingWipe: null,
    lastSuccessAt: null,
    tables: [],
  };

  let state: MirrorState | null = null;
  let reason: string | null = null;
  let paused = carried.paused;
  let pauseReason = carried.pauseReason;
  let pendingWipe = carried.pendingWipe;
  let lastSuccessAt = carried.lastSuccessAt;
  let pausedByRestore = carried.pausedByRestore ?? false;
  let restoreAccepted = carried.restoreAccepted ?? false;
  const backfill = new Set(carried.backfill ?? []);
  let wake = false;
  let policy = carried.policy ?? DEFAULT_POLICY;
  const tables = new Map<string, TableStatus>(carried.tables.map((t) => [t.name, t]));
  /** The scope of the activity now running, cancelled when an operator's request needs the workflow's attention. */
  let current: CancellationScope | null = null;

  const setState = (next: MirrorState, why: string | null = null): void => {
    reason = why;
    if (next === state) return;
    state = next;
    // Upserted only on a change: an idle tenant adds no events here.
    upsertSearchAttributes([
      { key: TENANT_ID_KEY, value: tenantId },
      { key: MIRROR_STATE_KEY, value: next },
    ]);
    log.info('tenant state', { tenantId, state: next, reason: why });
  };
  const interrupt = (): void => {
    wake = true;
    current?.cancel();
  };

  setHandler(statusQuery, (): TenantStatus => ({
    tenantId,
    state: state ?? 'bootstrapping',
    reason,
    tables: [...tables.values()],
    lastSuccessAt: lastSuccessAt === null ? null : new Date(lastSuccessAt).toISOString(),
    pendingWipe,
  }));
  setHandler(pauseSignal, (why) => {
    paused = true;
    pauseReason = why ?? 'paused by operator';
    pausedByRestore = false;
    interrupt();
  });
  setHandler(resumeSignal, () => {
    // Resuming a restore pause is the operator's go-ahead to repopulate: without it the restore evidence, still
    // there at the next bootstrap, would pause the tenant again at once.
    if (paused && pausedByRestore) restoreAccepted = true;
    paused = false;
    pauseReason = null;
    pausedByRestore = false;
    interrupt();
  });
  setHandler(syncNowSignal, () => interrupt());
  setHandler(
    forceWipeUpdate,
    (request) => {
      const requested: string[] | 'all' = request?.tables?.length ? request.tables : 'all';
      pendingWipe = mergeWipe(pendingWipe, requested);
      const ack: ForceWipeAck = { accepted: true, tables: requested, state: state ?? 'bootstrapping' };
      interrupt();
      return ack;
    },
    {
      validator: (request) => {
        const list = request?.tables;
        if (list !== undefined && (!Array.isArray(list) || list.some((t) => typeof t !== 'string' || t.length === 0))) {
          throw new Error('forceWipe: tables must be a list of table names');
        }
      },
    },
  );

  /** Runs an activity call in a scope an operator's request can cancel; returns null when it was cancelled. */
  async function interruptible<T>(fn: () => Promise<T>): Promise<T | null> {
    const scope = new CancellationScope();
    current = scope;
    try {
      return await scope.run(fn);
    } catch (err) {
      if (isCancellation(err)) return null;
      throw err;
    } finally {
      current = null;
    }
  }

  /** The 7-day rule: no successful sync for longer than the retention means a full wipe and repopulation. */
  function expired(): boolean {
    return lastSuccessAt !== null && Date.now() - lastSuccessAt > policy.retentionMs;
  }
  const noteSuccess = (at: number | null = Date.now()): void => {
    if (at !== null && (lastSuccessAt === null || at > lastSuccessAt)) lastSuccessAt = at;
  };
  const acts = (): TenantActivities => activitiesFor(policy);

  for (;;) {
    if (workflowInfo().continueAsNewSuggested) break;
    wake = false;

    if (expired() && pendingWipe !== 'all') {
      log.warn('no successful sync within retention: wiping', { tenantId });
      pendingWipe = 'all';
    }

    if (pendingWipe) {
      const wipe = pendingWipe;
      setState('wiping', wipe === 'all' ? 'wiping all tables' : `wiping ${wipe.join(', ')}`);
      try {
        await acts().wipeTables(tenantId, { tables: wipe, reason: expired() ? 'no sync within retention' : 'forced wipe' });
        if (pendingWipe === wipe) pendingWipe = null;
        else if (pendingWipe !== 'all' && Array.isArray(wipe)) pendingWipe = pendingWipe.filter((t) => !wipe.includes(t));
        for (const t of tables.values()) {
          if (wipe === 'all' || wipe.includes(t.name)) Object.assign(t, { state: 'pending', lsn: null, rows: null, lastSyncAt: null });
        }
        if (wipe === 'all') lastSuccessAt = null;
      } catch (err) {
        await handleFailure(err);
      }
      continue;
    }

    if (paused) {
      setState('paused', pauseReason);
      await condition(() => !paused || pendingWipe !== null);
      continue;
    }

    // Bootstrapping: read configuration and catalog, enable tracking, apply schemas, decide per table.
    setState('bootstrapping', null);
    let plan: TenantPlan;
    try {
      plan = await acts().prepareTenant(tenantId);
    } catch (err) {
      await handleFailure(err);
      continue;
    }
    policy = plan.policy;
    if (!plan.sourceRestored) restoreAccepted = false;
    if (plan.sourceRestored && policy.onSourceRestore === 'pause' && !restoreAccepted) {
      reconcileTables(plan);
      pauseForRestore(plan.sourceRestored);
      continue;
    }
    // A column added in place during a session: the rows already mirrored need its values.
    const planned = new Set(plan.tables.map((t) => t.name));
    for (const name of [...backfill]) if (!planned.has(name)) backfill.delete(name);
    plan.tables = plan.tables.map((t) =>
      t.action === 'mirror' && backfill.has(t.name) ? { name: t.name, action: 'populate', reason: 'column added', detail: 'backfill the added column' } : t,
    );
    reconcileTables(plan);

    // Populating: every table that needs its rows (again). Since PARALLEL_POPULATION, a few tables at a time, so
    // one table's set-up and swap overlap another's copy; histories from before it replay one at a time.
    const queue = plan.tables
      .filter((t) => t.action === 'populate')
      .sort((a, b) => (b.estimatedRows ?? 0) - (a.estimatedRows ?? 0));
    let failure: unknown = null;
    if (queue.length > 0) {
      const lanes = patched(PARALLEL_POPULATION) ? POPULATION_LANES : 1;
      const populateLane = async (): Promise<void> => {
        for (let table = queue.shift(); table && failure === null && !wake; table = queue.shift()) {
          const status = tableStatus(table.name);
          status.state = 'populating';
          status.error = null;
          setState('populating', `${table.name}: ${table.reason ?? 'populate'}`);
          try {
            const result = await acts().populateTable(tenantId, table.name);
            Object.assign(status, { state: 'mirroring', lsn: result.lsn, rows: result.rows, lastSyncAt: new Date().toISOString() });
            backfill.delete(table.name);
            noteSuccess();
          } catch (err) {
            if (isCancellation(err)) throw err;
            status.state = 'failed';
            status.error = failureMessage(err);
            failure ??= err;
          }
        }
      };
      const done = await interruptible(async () => {
        // allSettled: a cancelled lane must not leave before the others' activities have finished cancelling.
        const settled = await Promise.allSettled(Array.from({ length: Math.min(lanes, queue.length) }, populateLane));
        const cancelled = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (cancelled) throw cancelled.reason;
        return true;
      });
      if (failure !== null) {
        await handleFailure(failure);
        continue;
      }
      if (done === null) continue;
    }
    if (wake) continue;

    // Mirroring: one long-running session until something needs a decision.
    const mirrored = plan.tables.map((t) => t.name).filter((name) => tableStatus(name).state !== 'failed');
    setState('mirroring', null);
    let session: SessionResult | null;
    try {
      session = await interruptible(() =>
        acts().syncSession(tenantId, { tables: mirrored, maxDurationMs: sessionLimit(policy) }),
      );
    } catch (err) {
      await handleFailure(err);
      continue;
    }
    if (session === null) continue;
    noteSuccess(session.lastSuccessAt);
    for (const figures of session.tableStatus) Object.assign(tableStatus(figures.name), figures, { state: 'mirroring', error: null });
    if (session.reason === 'schemaChanged') for (const name of session.tables) backfill.add(name);
  }

  await condition(allHandlersFinished);
  await continueAsNew<typeof tenantMirrorWorkflow>({
    tenantId,
    carried: {
      paused,
      pauseReason,
      pendingWipe,
      lastSuccessAt,
      tables: [...tables.values()],
      pausedByRestore,
      restoreAccepted,
      backfill: [...backfill],
      policy,
    },
  });

  function pauseForRestore(evidence: string): void {
    paused = true;
    pausedByRestore = true;
    pauseReason = `source restored: ${evidence} (policy onSourceRestore=pause: resume to repopulate)`;
  }

  function tableStatus(name: string): TableStatus {
    let status = tables.get(name);
    if (!status) {
      status = { name, state: 'pending', lsn: null, rows: null, lastSyncAt: null, error: null };
      tables.set(name, status);
    }
    return status;
  }

  function reconcileTables(plan: TenantPlan): void {
    const known = new Set([...plan.tables.map((t) => t.name), ...plan.skipped.map((s) => s.name)]);
    for (const name of [...tables.keys()]) if (!known.has(name)) tables.delete(name);
    for (const t of plan.tables) {
      const status = tableStatus(t.name);
      if (t.action === 'populate') Object.assign(status, { state: 'pending', error: t.detail ?? t.reason ?? null });
      else if (status.state !== 'mirroring') status.state = 'mirroring';
    }
    for (const s of plan.skipped) Object.assign(tableStatus(s.name), { state: 'skipped', error: s.reason });
  }

  /**
   * Decides what a failed activity means. Blocking failures (bad config, credentials) wait without hammering;
   * the retention rule still applies while waiting. Returns true when the caller should restart the loop.
   */
  async function handleFailure(err: unknown): Promise<boolean> {
    if (isCancellation(err)) return true;
    const type = failureTypeOf(err);
    const message = failureMessage(err);
    if (isRepopulateFailure(type)) {
      // The activity already left the mirror in a state the next bootstrap will repopulate from.
      log.warn('repopulating after failure', { tenantId, type, message });
      reason = message;
      return true;
    }
    if (isBlockingFailure(type)) {
      setState('blocked', message);
      const until = lastSuccessAt === null ? BLOCKED_RECHECK_MS : Math.min(BLOCKED_RECHECK_MS, Math.max(0, lastSuccessAt + policy.retentionMs - Date.now()) + 1);
      await condition(() => wake || pendingWipe !== null, until);
      return true;
    }
    if (err instanceof ActivityFailure || err instanceof ApplicationFailure) {
      // Retries are exhausted only when the retry window ran out; wait a little and start over.
      reason = message;
      await sleep(policy.pollIntervalMs);
      return true;
    }
    throw err;
  }
}

/** A session returns within a fraction of the retention, so the 7-day rule is checked in time. */
function sessionLimit(policy: TenantPolicy): number {
  return Math.max(10_000, Math.min(SESSION_MAX_MS, Math.floor(policy.retentionMs / 8)));
}

function mergeWipe(current: string[] | 'all' | null, requested: string[] | 'all'): string[] | 'all' {
  if (current === 'all' || requested === 'all') return 'all';
  return [...new Set([...(current ?? []), ...requested])];
}

/**
 * Activity options derive from the tenant's policy: retries back off up to a bound that never outlives the
 * retention, and give the workflow back control well before it, so the 7-day rule can act.
 */
function activitiesFor(policy: TenantPolicy): TenantActivities {
  const maximumInterval = Math.max(1_000, Math.min(5 * 60_000, Math.floor(policy.retentionMs / 20)));
  const retryWindow = Math.max(60_000, Math.floor(policy.retentionMs / 4));
  const retry = {
    initialInterval: 1_000,
    backoffCoefficient: 2,
    maximumInterval,
    nonRetryableErrorTypes: ['IncompatibleSchema', 'TrackingExpired', 'SourceRestored', 'AuthFailed', 'BadConfig'],
  };
  const short = proxyActivities<TenantActivities>({
    startToCloseTimeout: '10 minutes',
    scheduleToCloseTimeout: retryWindow,
    retry,
  });
  const populate = proxyActivities<TenantActivities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: '30 seconds',
    scheduleToCloseTimeout: retryWindow,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry,
  });
  const session = proxyActivities<TenantActivities>({
    startToCloseTimeout: sessionLimit(policy) + 10 * 60_000,
    // The session heartbeats every 160 s (heartbeats are billable); a worker that died is noticed within 8 min.
    heartbeatTimeout: '8 minutes',
    scheduleToCloseTimeout: sessionLimit(policy) + retryWindow,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry,
  });
  return {
    prepareTenant: short.prepareTenant,
    wipeTables: short.wipeTables,
    populateTable: populate.populateTable,
    syncSession: session.syncSession,
  };
}
