/**
 * The tenant's phases: each a small function that runs the activities of one step and moves the state on.
 *
 *   sync:   bootstrapping ─► populating ─► mirroring   (one pass; the workflow loops)
 *   wipe:   wiping, then the next pass repopulates what was wiped
 *   paused: holds, without activities, until resumed or a wipe is requested
 *   recover: what a failed activity means (contract/failures.ts): repopulate, block the tenant, or retry later
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { TenantActivities } from '../contract/activities';
import { failureAction } from '../contract/failures';
import { FAILED_TABLES_KEY, MIRROR_STATE_KEY, TENANT_ID_KEY } from '../contract/ids';
import type { MirrorState, TablePlan, TenantPlan } from '../contract/payloads';
import { activitiesFor, sessionLimit } from './activity-options';
import { failureMessage, failureTable, failureTypeOf } from './failures';
import {
  blockedWaitMs,
  failedTableCount,
  pauseForRestore,
  populationQueue,
  reconcileTables,
  recordPopulated,
  recordPopulating,
  recordSession,
  recordTableFailed,
  recordTableFailure,
  recordWiped,
  retentionExpired,
  sessionTables,
  nextWakeAt,
  waitingTables,
  wipeBackoffMs,
  withBackfill,
  type TenantState,
} from './state';

/** While blocked, look again this often (or at once on resume/syncNow). */
const BLOCKED_RECHECK_MS = 10 * 60 * 1000;
/** Tables populated at once (source snapshots and mirror connections per tenant grow with it). */
const POPULATION_LANES = 2;
/** Patch id: populations run in POPULATION_LANES lanes instead of one after another. */
const PARALLEL_POPULATION = 'parallel-population';
/** Patch id: a wipe that fails for credentials, configuration or one table waits with backoff (before, it was tried again at once). */
const WIPE_BACKOFF = 'wipe-backoff';

export type Phase = 'wipe' | 'paused' | 'sync';

/** The 7-day rule first, then an operator's wipe, then a pause; otherwise the tenant syncs. */
export function nextPhase(s: TenantState, now: number): Phase {
  if (retentionExpired(s, now) && s.pendingWipe !== 'all') {
    log.warn('no successful sync within retention: wiping', { tenantId: s.tenantId });
    s.pendingWipe = 'all';
  }
  if (s.pendingWipe) return 'wipe';
  return s.pause ? 'paused' : 'sync';
}

/** Publishes the tenant's state: the MirrorState search attribute is upserted only on a change (an idle tenant adds no events). */
function publish(s: TenantState, next: MirrorState, why: string | null = null): void {
  s.reason = why;
  publishFailedTables(s);
  if (next === s.published) return;
  s.published = next;
  upsertSearchAttributes([
    { key: TENANT_ID_KEY, value: s.tenantId },
    { key: MIRROR_STATE_KEY, value: next },
  ]);
  log.info('tenant state', { tenantId: s.tenantId, state: next, reason: why });
}

/** Patch id: a `restart` failure (WorkerLost, Interrupted) starts the work over at once (before, it waited a poll interval). */
const RESTART_AT_ONCE = 'restart-at-once';
/** Patch id: the FailedTables search attribute is kept up to date (before, it did not exist). */
const FAILED_TABLES_ATTRIBUTE = 'failed-tables-attribute';
/**
 * Patch id: an activity the workflow cancelled that fails anyway (its attempt failed as the cancellation reached
 * it, e.g. SourceBusy) is the interruption the workflow asked for (before, it was recorded as the table's failure
 * and waited out a poll interval before the wipe or pause was acted on).
 */
const FAILED_WHILE_CANCELLED = 'failed-while-cancelled';

/** Publishes the count of failed tables when it changed (once per run at least, as search attributes outlive runs). */
export function publishFailedTables(s: TenantState): void {
  const failed = failedTableCount(s);
  if (failed === s.publishedFailed || !patched(FAILED_TABLES_ATTRIBUTE)) return;
  s.publishedFailed = failed;
  upsertSearchAttributes([{ key: FAILED_TABLES_KEY, value: failed }]);
}

const acts = (s: TenantState): TenantActivities => activitiesFor(s.policy);

export async function wipePhase(s: TenantState): Promise<void> {
  const wipe = s.pendingWipe ?? 'all';
  publish(s, 'wiping', wipe === 'all' ? 'wiping all tables' : `wiping ${wipe.join(', ')}`);
  try {
    const reason = retentionExpired(s, Date.now()) ? 'no sync within retention' : 'forced wipe';
    await acts(s).wipeTables(s.tenantId, { tables: wipe, reason });
    recordWiped(s, wipe);
    s.wipeFailures = 0;
  } catch (err) {
    // A wipe stays pending while it fails, so the usual waits (the blocked one ends on a pending wipe, a table's
    // failure does not wait at all) would turn a rotated password, or a partner's view on a table the wipe must
    // drop, into a tight loop: wait with a growing backoff instead, or until resumed.
    const action = failureAction(failureTypeOf(err));
    if ((action === 'blockTenant' || action === 'blockTable') && patched(WIPE_BACKOFF)) {
      s.wipeFailures = (s.wipeFailures ?? 0) + 1;
      const waitMs = wipeBackoffMs(s.wipeFailures, BLOCKED_RECHECK_MS);
      publish(s, 'blocked', `wipe failed (attempt ${s.wipeFailures}, next in ${Math.round(waitMs / 1000)} s): ${failureMessage(err)}`);
      await condition(() => s.wake, waitMs);
      return;
    }
    await recover(s, err);
  }
}

export async function pausedPhase(s: TenantState): Promise<void> {
  publish(s, 'paused', s.pause?.reason ?? null);
  await condition(() => s.pause === null || s.pendingWipe !== null);
}

export async function syncPhase(s: TenantState, interrupter: Interrupter): Promise<void> {
  publish(s, 'bootstrapping', null);
  const tables = await bootstrap(s);
  if (tables === null || !(await populate(s, interrupter, tables)) || s.wake) return;
  await mirror(s, interrupter, tables);
}

/** Reads configuration and catalog, enables tracking, applies schemas: the plan, or null when there is none to follow. */
async function bootstrap(s: TenantState): Promise<TablePlan[] | null> {
  let plan: TenantPlan;
  try {
    const waiting = waitingTables(s, Date.now());
    plan = await (waiting.length ? acts(s).prepareTenant(s.tenantId, { waiting }) : acts(s).prepareTenant(s.tenantId));
  } catch (err) {
    await recover(s, err);
    return null;
  }
  s.policy = plan.policy;
  if (!plan.sourceRestored) s.restoreAccepted = false;
  if (plan.sourceRestored && s.policy.onSourceRestore === 'pause' && !s.restoreAccepted) {
    reconcileTables(s, plan, Date.now());
    pauseForRestore(s, plan.sourceRestored);
    return null;
  }
  const tables = withBackfill(s, plan.tables);
  reconcileTables(s, { ...plan, tables }, Date.now());
  return tables;
}

/**
 * Every table that needs its rows (again). Since PARALLEL_POPULATION a few tables at a time, so one table's set-up
 * and swap overlap another's copy; histories from before it replay one at a time. Returns whether to go on to
 * mirroring (false after a failure or an interruption).
 */
async function populate(s: TenantState, interrupter: Interrupter, tables: TablePlan[]): Promise<boolean> {
  const queue = populationQueue(tables);
  if (queue.length === 0) return true;
  const lanes = patched(PARALLEL_POPULATION) ? POPULATION_LANES : 1;
  let failure: unknown = null;
  const lane = async (): Promise<void> => {
    for (let table = queue.shift(); table && failure === null && !s.wake; table = queue.shift()) {
      recordPopulating(s, table);
      publish(s, 'populating', `${table.name}: ${table.reason ?? 'populate'}`);
      try {
        recordPopulated(s, await acts(s).populateTable(s.tenantId, table.name), Date.now());
      } catch (err) {
        if (isCancellation(err) || interrupter.stopped(err)) throw err;
        if (failureAction(failureTypeOf(err)) === 'blockTable') {
          // This table alone waits; the lanes go on with the others.
          recordTableFailure(s, table.name, failureTypeOf(err) ?? 'TableFailed', failureMessage(err), Date.now());
          continue;
        }
        // A lost worker says nothing about the table: it is simply started over.
        if (failureAction(failureTypeOf(err)) !== 'restart') recordTableFailed(s, table.name, failureMessage(err));
        failure ??= err;
      }
    }
  };
  const done = await interrupter.run(async () => {
    // allSettled: a cancelled lane must not leave before the others' activities have finished cancelling.
    const settled = await Promise.allSettled(Array.from({ length: Math.min(lanes, queue.length) }, lane));
    const cancelled = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (cancelled) throw cancelled.reason;
    return true;
  });
  if (failure !== null) {
    await recover(s, failure);
    return false;
  }
  return done !== null;
}

/**
 * One long-running sync session until something needs a decision. It returns by the time a failed table is due
 * for another try or a refreshed table for its refresh, so the next bootstrap takes care of them.
 */
async function mirror(s: TenantState, interrupter: Interrupter, tables: TablePlan[]): Promise<void> {
  const { tables: synced, others } = sessionTables(s, tables);
  const wakeAt = nextWakeAt(s, tables);
  const limit = sessionLimit(s.policy);
  const maxDurationMs = wakeAt === null ? limit : Math.max(1_000, Math.min(limit, wakeAt - Date.now()));
  publish(s, 'mirroring', null);
  try {
    const input = others.length ? { tables: synced, others, maxDurationMs } : { tables: synced, maxDurationMs };
    const result = await interrupter.run(() => acts(s).syncSession(s.tenantId, input));
    if (result) recordSession(s, result);
  } catch (err) {
    await recover(s, err);
  }
}

/**
 * The activity now running, cancelled when an operator's message needs the workflow's attention: message
 * handlers record their intent on the state and call `wake()`.
 */
export class Interrupter {
  private current: CancellationScope | null = null;

  constructor(private readonly s: TenantState) {}

  wake(): void {
    this.s.wake = true;
    this.current?.cancel();
  }

  /** Runs activity calls in a scope `wake()` cancels; returns null when it was cancelled. */
  async run<T>(fn: () => Promise<T>): Promise<T | null> {
    const scope = new CancellationScope();
    this.current = scope;
    try {
      return await scope.run(fn);
    } catch (err) {
      if (isCancellation(err) || this.stopped(err)) return null;
      throw err;
    } finally {
      this.current = null;
    }
  }

  /**
   * Whether `err` is the failure of an activity this scope had cancelled (its attempt failed as the cancellation
   * reached it): the interruption asked for, not a failure to act on. What it failed for is met again next time.
   */
  stopped(err: unknown): boolean {
    return err instanceof ActivityFailure && this.current?.consideredCancelled === true && patched(FAILED_WHILE_CANCELLED);
  }
}

/**
 * What a failed activity means, by its failure type. `repopulate`: the activity already left the mirror in a state
 * the next bootstrap repopulates from. `blockTenant`: wait without hammering (the retention rule still applies
 * while waiting). `retry`: the retry window ran out; wait a little and start over.
 */
async function recover(s: TenantState, err: unknown): Promise<void> {
  if (isCancellation(err)) return;
  const type = failureTypeOf(err);
  const message = failureMessage(err);
  switch (failureAction(type)) {
    case 'repopulate':
      log.warn('repopulating after failure', { tenantId: s.tenantId, type, message });
      s.reason = message;
      return;
    case 'blockTable': {
      const table = failureTable(err);
      if (table !== null) {
        recordTableFailure(s, table, type ?? 'TableFailed', message, Date.now());
        return;
      }
      // A table failure that names no table cannot be kept to one: retried like any other.
      if (!(err instanceof ActivityFailure || err instanceof ApplicationFailure)) throw err;
      s.reason = message;
      await sleep(s.policy.pollIntervalMs);
      return;
    }
    case 'blockTenant':
      publish(s, 'blocked', message);
      await condition(() => s.wake || s.pendingWipe !== null, blockedWaitMs(s, Date.now(), BLOCKED_RECHECK_MS));
      return;
    case 'retry':
      if (!(err instanceof ActivityFailure || err instanceof ApplicationFailure)) throw err;
      s.reason = message;
      await sleep(s.policy.pollIntervalMs);
      return;
    case 'restart':
      s.reason = message;
      // Before RESTART_AT_ONCE a WorkerLost that reached the workflow was a `retry`: a pause, then start over.
      if (!patched(RESTART_AT_ONCE)) {
        await sleep(s.policy.pollIntervalMs);
        return;
      }
      log.info('starting over on a live worker', { tenantId: s.tenantId, type, message });
  }
}
