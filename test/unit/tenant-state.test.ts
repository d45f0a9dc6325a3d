/**
 * The workflow's state transitions (workflows/state.ts) and the failure table (contract/failures.ts): pure
 * functions, tested without Temporal.
 */
import { describe, expect, it } from 'vitest';
import { FAILURE_ACTIONS, NON_RETRYABLE_TYPES, failureAction } from '../../contract/failures';
import {
  blockedWaitMs,
  initialState,
  mergeWipe,
  reconcileTables,
  recordPopulated,
  recordSession,
  recordWiped,
  requestPause,
  requestResume,
  requestTablePause,
  requestTableResume,
  requestWipe,
  retentionExpired,
  tablesRequestProblem,
  waitingTables,
  statusOf,
  withBackfill,
  pauseForRestore,
  type TenantState,
} from '../../workflows/state';

const DAY = 24 * 3600 * 1000;

function fresh(): TenantState {
  return initialState({ tenantId: 'acme' });
}

describe('failure table', () => {
  it('names an action for every type, and the retry policy retries exactly the retry ones', () => {
    expect(failureAction('IncompatibleSchema')).toBe('repopulate');
    expect(failureAction('AuthFailed')).toBe('blockTenant');
    expect(failureAction('MirrorWriteFailed')).toBe('retry');
    expect(failureAction('SomethingNobodyClassified')).toBe('retry');
    expect(failureAction(null)).toBe('retry');
    for (const [type, action] of Object.entries(FAILURE_ACTIONS)) {
      expect(NON_RETRYABLE_TYPES.includes(type as never)).toBe(action !== 'retry');
    }
  });
});

describe('tenant state', () => {
  it('starts from the defaults, or converts the carried state of an older run', () => {
    const s = fresh();
    expect(s).toMatchObject({ tenantId: 'acme', pause: null, pendingWipe: null, tables: [], published: null });
    expect(s.policy.retentionMs).toBe(7 * DAY);
    const legacy = initialState({
      tenantId: 'acme',
      carried: { paused: true, pauseReason: 'source restored: x', pausedByRestore: true, pendingWipe: ['a'], lastSuccessAt: 5, tables: [], backfill: ['b'] },
    });
    expect(legacy).toMatchObject({ pause: { reason: 'source restored: x', byRestore: true }, pendingWipe: ['a'], lastSuccessAt: 5, backfill: ['b'] });
  });

  it('a carried state is kept whole, but a new run publishes its state again', () => {
    const s = fresh();
    s.published = 'mirroring';
    s.lastSuccessAt = 42;
    const next = initialState({ tenantId: 'acme', state: s });
    expect(next).toEqual({ ...s, published: null, publishedFailed: null, wake: false });
  });

  it('a paused table is left alone by bootstrap, shows paused, and a resume or a resync of it ends the pause', () => {
    const s = fresh();
    const plan = (orders: 'mirror' | 'wait') => ({
      policy: s.policy,
      tables: [{ name: 'customers', action: 'mirror' as const }, { name: 'orders', action: orders }],
      skipped: [{ name: 'audit', reason: 'no key' }],
      dropped: [],
      sourceRestored: null,
    });
    reconcileTables(s, plan('mirror'), 0);
    expect(tablesRequestProblem(s, [], false)).toMatch(/non-empty list/);
    expect(tablesRequestProblem(s, ['audit'], false)).toMatch(/not mirrored/);
    expect(tablesRequestProblem(s, ['orders'], true)).toMatch(/"orders" is not paused/);
    expect(tablesRequestProblem(s, ['orders'], false)).toBeNull();
    requestTablePause(s, ['orders'], 'migration');
    expect(waitingTables(s, 0)).toEqual(['orders']);
    reconcileTables(s, plan('wait'), 0);
    expect(s.tables.find((t) => t.name === 'orders')).toMatchObject({ state: 'paused', error: 'migration' });
    expect(tablesRequestProblem(s, ['orders'], true)).toBeNull();
    requestTableResume(s, ['orders']);
    expect(waitingTables(s, 0)).toEqual([]);
    requestTablePause(s, ['orders'], undefined);
    requestWipe(s, ['orders']);
    expect(waitingTables(s, 0)).toEqual([]);
    requestTablePause(s, ['orders'], undefined);
    reconcileTables(s, { ...plan('wait'), tables: [{ name: 'customers', action: 'mirror' }] }, 0);
    expect(s.pausedTables).toEqual([]); // orders left the source: no pause waits for it
  });

  it('merges wipe requests; all wins', () => {
    expect(mergeWipe(null, ['a'])).toEqual(['a']);
    expect(mergeWipe(['a'], ['b', 'a'])).toEqual(['a', 'b']);
    expect(mergeWipe(['a'], 'all')).toBe('all');
    const s = fresh();
    expect(requestWipe(s, [])).toBe('all');
    expect(s.pendingWipe).toBe('all');
  });

  it('a finished wipe clears what it covered and keeps what arrived meanwhile', () => {
    const s = fresh();
    s.tables = [{ name: 'a', state: 'mirroring', lsn: '9', rows: 3, lastSyncAt: 'x', error: null }];
    requestWipe(s, ['a']);
    const wiping = s.pendingWipe!;
    requestWipe(s, ['b']);
    recordWiped(s, wiping);
    expect(s.pendingWipe).toEqual(['b']);
    expect(s.tables[0]).toMatchObject({ state: 'pending', lsn: null, rows: null });
    s.lastSuccessAt = 1;
    recordWiped(s, 'all');
    expect(s.lastSuccessAt).toBeNull();
  });

  it('resuming a restore pause accepts the restore; resuming an operator pause does not', () => {
    const s = fresh();
    pauseForRestore(s, 'timeline changed');
    requestResume(s);
    expect(s).toMatchObject({ pause: null, restoreAccepted: true });
    const t = fresh();
    requestPause(t, undefined);
    expect(t.pause).toEqual({ reason: 'paused by operator', byRestore: false });
    requestResume(t);
    expect(t.restoreAccepted).toBe(false);
  });

  it('the 7-day rule counts from the last success, and a blocked tenant re-checks before it runs out', () => {
    const s = fresh();
    expect(retentionExpired(s, 10 * DAY)).toBe(false);
    s.lastSuccessAt = 0;
    expect(retentionExpired(s, 7 * DAY)).toBe(false);
    expect(retentionExpired(s, 7 * DAY + 1)).toBe(true);
    expect(blockedWaitMs(s, 7 * DAY - 5_000, 600_000)).toBe(5_001);
    expect(blockedWaitMs(fresh(), 0, 600_000)).toBe(600_000);
  });

  it('reconciles status with a plan, and backfills a table that gained a column', () => {
    const s = fresh();
    s.tables = [{ name: 'gone', state: 'mirroring', lsn: '1', rows: 1, lastSyncAt: null, error: null }];
    s.backfill = ['orders', 'dropped'];
    const tables = withBackfill(s, [{ name: 'orders', action: 'mirror' }, { name: 'new', action: 'populate', reason: 'new table' }]);
    expect(tables[0]).toMatchObject({ name: 'orders', action: 'populate', reason: 'column added' });
    expect(s.backfill).toEqual(['orders']);
    reconcileTables(s, { policy: s.policy, tables, skipped: [{ name: 'keyless', reason: 'no key' }], dropped: [], sourceRestored: null }, 0);
    expect(statusOf(s).tables.map((t) => [t.name, t.state])).toEqual([['orders', 'pending'], ['new', 'pending'], ['keyless', 'skipped']]);
    recordPopulated(s, { table: 'orders', rows: 5, lsn: '77', resumed: false, durationMs: 1 }, 1_000);
    expect(s.backfill).toEqual([]);
    expect(s.lastSuccessAt).toBe(1_000);
    recordSession(s, { reason: 'schemaChanged', detail: null, tables: ['new'], cycles: 1, changesApplied: 0, lastSuccessAt: 2_000, tableStatus: [{ name: 'orders', lsn: '80', rows: 6, lastSyncAt: 'y' }] });
    expect(s.backfill).toEqual(['new']);
    expect(s.tables.find((t) => t.name === 'orders')).toMatchObject({ state: 'mirroring', lsn: '80', rows: 6 });
    expect(s.lastSuccessAt).toBe(2_000);
  });
});
