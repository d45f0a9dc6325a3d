/**
 * The tenant workflow's state machine against a real Temporal server (the run's dev server) with stubbed
 * activities: every decision the workflow makes, without databases.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { TenantActivities } from '../../contract';
import {
  forceWipeSignal,
  FAILED_TABLES_KEY,
  forceWipeUpdate,
  MIRROR_STATE_KEY,
  pauseSignal,
  pauseTablesUpdate,
  resumeSignal,
  resumeTablesUpdate,
  statusQuery,
  type SessionInput,
  type SessionResult,
  type TablePlan,
  type TenantPlan,
  type TenantStatus,
  type WipeInput,
} from '../../contract';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import { sharedTemporal } from '../support/temporal';
import { waitFor } from '../support/wait';
import { recordHistory } from '../support/histories';
import { activityRuns } from '../support/scenario-tools';

const temporal = sharedTemporal();
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;

beforeAll(async () => {
  connection = await Connection.connect({ address: temporal.address });
  nativeConnection = await NativeConnection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: temporal.namespace });
});
afterAll(async () => {
  await connection?.close();
  await nativeConnection?.close();
});

function plan(overrides: Partial<TenantPlan> = {}): TenantPlan {
  return {
    policy: { pollIntervalMs: 200, retentionMs: 7 * 24 * 3600 * 1000, onSourceRestore: 'repopulate' },
    tables: [
      { name: 'customers', action: 'populate', reason: 'new table' },
      { name: 'orders', action: 'mirror' },
    ],
    skipped: [{ name: 'audit_log', reason: 'no primary key: change tracking needs one' }],
    dropped: [],
    sourceRestored: null,
    ...overrides,
  };
}

/** Records every call; the session waits (heartbeating) until cancelled, like the real one when idle. */
class Stubs {
  calls: string[] = [];
  /** The tables each prepareTenant was told to leave alone. */
  waiting: string[][] = [];
  wipes: WipeInput[] = [];
  prepare: () => Promise<TenantPlan> = async () => plan();
  session: (input: SessionInput) => Promise<SessionResult> = () => this.idleSession();

  activities(): TenantActivities {
    return {
      prepareTenant: async (_tenant, opts) => {
        this.calls.push('prepare');
        this.waiting.push(opts?.waiting ?? []);
        return this.prepare();
      },
      populateTable: async (_tenant, table) => {
        this.calls.push(`populate:${table}`);
        return { table, rows: 10, lsn: '100', resumed: false, durationMs: 1 };
      },
      syncSession: async (_tenant, input) => {
        this.calls.push(`session:${input.tables.join(',')}`);
        return this.session(input);
      },
      wipeTables: async (_tenant, input) => {
        this.calls.push('wipe');
        this.wipes.push(input);
        return { wiped: input.tables };
      },
    };
  }

  async idleSession(): Promise<SessionResult> {
    const ctx = Context.current();
    for (;;) {
      ctx.heartbeat({ cycles: 1 });
      await ctx.sleep(200); // throws CancelledFailure once the workflow cancels the session
    }
  }
}

async function withWorker<T>(stubs: Stubs, body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `wf-test-${randomUUID()}`;
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: temporal.namespace,
    taskQueue,
    workflowBundle: { codePath: temporal.workflowBundlePath },
    activities: stubs.activities(),
    maxHeartbeatThrottleInterval: '200 milliseconds',
    defaultHeartbeatThrottleInterval: '200 milliseconds',
  });
  return worker.runUntil(body(taskQueue));
}

async function start(taskQueue: string, tenantId = `t-${randomUUID().slice(0, 8)}`) {
  return client.workflow.start(tenantMirrorWorkflow, {
    workflowId: `tenant-mirror:${tenantId}`,
    taskQueue,
    args: [{ tenantId }],
  });
}

const stateOf = (s: TenantStatus) => s.state;

describe('tenant workflow state machine', () => {
  it('bootstraps, populates what needs it, then mirrors in one session; status shows every table', async () => {
    const stubs = new Stubs();
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stubs.calls.length === 3 && stateOf(await handle.query(statusQuery)) === 'mirroring');
      const status = await handle.query(statusQuery);
      expect(stubs.calls).toEqual(['prepare', 'populate:customers', 'session:customers,orders']);
      expect(status.tables.find((t) => t.name === 'customers')).toMatchObject({ state: 'mirroring', rows: 10, lsn: '100' });
      expect(status.tables.find((t) => t.name === 'audit_log')).toMatchObject({ state: 'skipped', error: expect.stringContaining('primary key') });
      const description = await handle.describe();
      expect(description.typedSearchAttributes.get(MIRROR_STATE_KEY)).toBe('mirroring');
      await recordHistory(handle, 'bootstrap-populate-mirror');
      await handle.terminate('test done');
    });
  });

  it('forceWipe is acknowledged at once, cancels the session, wipes the tables and repopulates', async () => {
    const stubs = new Stubs();
    let preparedAfterWipe = false;
    stubs.prepare = async () => {
      if (stubs.wipes.length === 0) return plan();
      preparedAfterWipe = true;
      return plan({ tables: [{ name: 'customers', action: 'populate', reason: 'never populated' }, { name: 'orders', action: 'populate', reason: 'never populated' }] });
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      const ack = await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['orders'] }] });
      expect(ack).toEqual({ accepted: true, tables: ['orders'], state: 'mirroring' });
      // 'mirroring' is published before the session's activity reaches the worker: wait for the call itself.
      await waitFor(async () => preparedAfterWipe && stubs.calls.at(-1)?.startsWith('session:') === true && stateOf(await handle.query(statusQuery)) === 'mirroring');
      expect(stubs.wipes).toEqual([{ tables: ['orders'], reason: 'forced wipe' }]);
      const last = stubs.calls.slice(-4);
      // The two populations run side by side (two lanes): either may be picked up first.
      expect([last[0], [...last.slice(1, 3)].sort(), last[3]]).toEqual(['prepare', ['populate:customers', 'populate:orders'], 'session:customers,orders']);
      await recordHistory(handle, 'force-wipe');
      await handle.terminate('test done');
    });
  });

  it('forceWipe as a signal wipes like the update; an invalid one and an unknown signal are recorded in status', async () => {
    const stubs = new Stubs();
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      await handle.signal(forceWipeSignal, { tables: ['nope'] });
      await handle.signal('forceWipee', {});
      await waitFor(async () => (await handle.query(statusQuery)).notices.length === 2);
      const { notices } = await handle.query(statusQuery);
      expect(notices[0]).toMatch(/forceWipe signal ignored: unknown table "nope" \(the tenant mirrors: customers, orders\)/);
      expect(notices[1]).toMatch(/signal "forceWipee" ignored: the workflow has no such signal \(it knows forceWipe, pause, resume, syncNow\)/);
      expect(stubs.wipes).toEqual([]);
      await handle.signal(forceWipeSignal, { tables: ['orders'] });
      await waitFor(async () => stubs.wipes.length === 1 && stateOf(await handle.query(statusQuery)) === 'mirroring');
      expect(stubs.wipes).toEqual([{ tables: ['orders'], reason: 'forced wipe' }]);
      await handle.signal(forceWipeSignal, {});
      await waitFor(async () => stubs.wipes.length === 2);
      expect(stubs.wipes[1]).toEqual({ tables: 'all', reason: 'forced wipe' });
      await recordHistory(handle, 'force-wipe-signal');
      await handle.terminate('test done');
    });
  });

  it('rejects a forceWipe update naming a table the tenant does not mirror', async () => {
    const stubs = new Stubs();
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      const rejected = await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['audit_log'] }] }).catch((err: Error) => err);
      expect(String((rejected as Error).cause)).toMatch(/table "audit_log" is not mirrored \(skipped: no primary key/);
      expect(stubs.wipes).toEqual([]);
      await handle.terminate('test done');
    });
  });

  it('rejects a malformed forceWipe without touching the tenant', async () => {
    const stubs = new Stubs();
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      const rejected = await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: [''] }] }).catch((err: Error) => err);
      expect(rejected).toBeInstanceOf(Error);
      expect(String((rejected as Error).cause)).toMatch(/tables must be a list/);
      expect(stubs.wipes).toEqual([]);
      await recordHistory(handle, 'force-wipe-rejected');
      await handle.terminate('test done');
    });
  });

  it('pauseTables stops one table alone: the session goes on without it, status shows it paused; resumeTables brings it back', async () => {
    const stubs = new Stubs();
    stubs.prepare = async () => {
      const waiting = stubs.waiting.at(-1) ?? [];
      return plan({ tables: [{ name: 'customers', action: 'mirror' }, waiting.includes('orders') ? { name: 'orders', action: 'wait' } : { name: 'orders', action: 'mirror' }] });
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers,orders');
      const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (err: Error) => String(err.cause));
      expect(await refusal(handle.executeUpdate(pauseTablesUpdate, { args: [{ tables: ['ordres'] }] }))).toMatch(/pauseTables: unknown table "ordres"/);
      expect(await refusal(handle.executeUpdate(resumeTablesUpdate, { args: [{ tables: ['orders'] }] }))).toMatch(/resumeTables: table "orders" is not paused/);
      const ack = await handle.executeUpdate(pauseTablesUpdate, { args: [{ tables: ['orders'], reason: 'partner migration' }] });
      expect(ack).toEqual({ accepted: true, tables: ['orders'] });
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers');
      expect(stubs.waiting.at(-1)).toEqual(['orders']);
      const paused = await handle.query(statusQuery);
      expect(paused.state).toBe('mirroring');
      expect(paused.tables.find((t) => t.name === 'orders')).toMatchObject({ state: 'paused', error: 'partner migration' });
      expect(paused.tables.find((t) => t.name === 'customers')?.state).toBe('mirroring');
      await handle.executeUpdate(resumeTablesUpdate, { args: [{ tables: ['orders'] }] });
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers,orders');
      expect(stubs.waiting.at(-1)).toEqual([]);
      expect((await handle.query(statusQuery)).tables.find((t) => t.name === 'orders')?.state).toBe('mirroring');
      await recordHistory(handle, 'table-pause-resume');
      await handle.terminate('test done');
    });
  });

  it('a resync (forceWipe) of a paused table wipes it, resumes it and repopulates it', async () => {
    const stubs = new Stubs();
    stubs.prepare = async () => {
      const waiting = stubs.waiting.at(-1) ?? [];
      const orders: TablePlan = waiting.includes('orders') ? { name: 'orders', action: 'wait' } : stubs.wipes.length ? { name: 'orders', action: 'populate', reason: 'never populated' } : { name: 'orders', action: 'mirror' };
      return plan({ tables: [{ name: 'customers', action: 'mirror' }, orders] });
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers,orders');
      await handle.executeUpdate(pauseTablesUpdate, { args: [{ tables: ['orders'] }] });
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers');
      await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['orders'] }] });
      await waitFor(async () => stubs.calls.at(-1) === 'session:customers,orders');
      expect(stubs.wipes).toEqual([{ tables: ['orders'], reason: 'forced wipe' }]);
      expect(stubs.calls.slice(-3)).toEqual(['prepare', 'populate:orders', 'session:customers,orders']);
      await handle.terminate('test done');
    });
  });

  it('FailedTables counts the failed tables, so a fleet query finds them; it goes back to 0 when the table recovers', async () => {
    const stubs = new Stubs();
    stubs.prepare = async () =>
      plan({
        tables: [
          { name: 'customers', action: 'mirror' },
          stubs.wipes.length ? { name: 'orders', action: 'mirror' } : { name: 'orders', action: 'failed', failure: { type: 'TableFailed', message: 'type "pair" does not exist' } },
        ],
      });
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      const failedTables = async () => (await handle.describe()).typedSearchAttributes.get(FAILED_TABLES_KEY);
      await waitFor(async () => (await failedTables()) === 1);
      const found: string[] = [];
      await waitFor(async () => {
        found.length = 0;
        for await (const wf of client.workflow.list({ query: `WorkflowId = '${handle.workflowId}' AND FailedTables > 0` })) found.push(wf.workflowId);
        return found.length === 1;
      });
      await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['orders'] }] });
      await waitFor(async () => (await failedTables()) === 0 && stubs.calls.at(-1) === 'session:customers,orders');
      await recordHistory(handle, 'failed-tables-attribute');
      await handle.terminate('test done');
    });
  });

  it('a session that lost its worker (WorkerLost) is started over at once as a new activity, not retried with a growing backoff', async () => {
    const stubs = new Stubs();
    const attempts: number[] = [];
    stubs.session = async () => {
      attempts.push(Context.current().info.attempt);
      if (attempts.length <= 3) throw ApplicationFailure.create({ type: 'WorkerLost', message: 'the worker is shutting down [tenant x, sync]' });
      return stubs.idleSession();
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => attempts.length === 4 && stateOf(await handle.query(statusQuery)) === 'mirroring');
      expect(attempts).toEqual([1, 1, 1, 1]);
      expect(stubs.calls.filter((c) => c === 'prepare')).toHaveLength(4);
      await recordHistory(handle, 'worker-lost-restart');
      await handle.terminate('test done');
    });
  });

  it('a population that fails as the wipe cancelling it arrives is the interruption asked for: no table failure, no wait, the wipe runs', async () => {
    const stubs = new Stubs();
    let prepared = 0;
    stubs.prepare = async () => {
      prepared += 1;
      return plan({ tables: [{ name: 'customers', action: 'populate', reason: prepared === 1 ? 'new table' : 'never populated' }, { name: 'orders', action: 'mirror' }] });
    };
    const base = stubs.activities();
    let attempts = 0;
    const activities: TenantActivities = {
      ...base,
      populateTable: async (tenant, table) => {
        attempts += 1;
        if (attempts > 1) return base.populateTable(tenant, table);
        stubs.calls.push(`populate:${table}`);
        const ctx = Context.current();
        try {
          for (;;) {
            ctx.heartbeat({ table });
            await ctx.sleep(100);
          }
        } catch {
          // What the real activity does when its locked table's read fails just as the cancellation reaches it.
          throw ApplicationFailure.create({ type: 'SourceBusy', message: 'the table is locked by DDL right now [table customers]' });
        }
      },
    };
    stubs.activities = () => activities;
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stubs.calls.includes('populate:customers'));
      await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['customers'] }] });
      await waitFor(async () => stubs.calls.at(-1)?.startsWith('session:') === true && stateOf(await handle.query(statusQuery)) === 'mirroring');
      expect(stubs.calls).toEqual(['prepare', 'populate:customers', 'wipe', 'prepare', 'populate:customers', 'session:customers,orders']);
      const runs = await activityRuns(client, handle.workflowId);
      const stopped = runs.find((r) => r.name === 'populateTable')!;
      // The attempt's failure is in the history as it happened...
      expect([stopped.outcome, stopped.failure?.type]).toEqual(['failed', 'SourceBusy']);
      const wipe = runs.find((r) => r.name === 'wipeTables')!;
      expect(wipe.eventId).toBeGreaterThan(stopped.closedEventId!);
      // ...but the workflow neither waited a poll interval on it nor counted the table as failed.
      const events = (await handle.fetchHistory()).events ?? [];
      const between = events.filter((e) => Number(e.eventId) > stopped.closedEventId! && Number(e.eventId) < wipe.eventId);
      expect(between.filter((e) => e.timerStartedEventAttributes)).toEqual([]);
      expect(JSON.stringify(between.map((e) => e.upsertWorkflowSearchAttributesEventAttributes ?? null))).not.toContain('FailedTables');
      await recordHistory(handle, 'failed-while-cancelled');
      await handle.terminate('test done');
    });
  });

  it('pause cancels the session and holds; resume bootstraps again', async () => {
    const stubs = new Stubs();
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      await handle.signal(pauseSignal, 'maintenance');
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'paused');
      const paused = await handle.query(statusQuery);
      expect(paused.reason).toBe('maintenance');
      const callsWhilePaused = stubs.calls.length;
      await new Promise((r) => setTimeout(r, 500));
      expect(stubs.calls.length).toBe(callsWhilePaused);
      await handle.signal(resumeSignal);
      await waitFor(async () => stubs.calls.filter((c) => c === 'prepare').length === 2);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      await recordHistory(handle, 'pause-resume');
      await handle.terminate('test done');
    });
  });

  it.each([
    ['AuthFailed', 'password authentication failed for user "partner" [tenant x, mirror, wipe]', 'wipe-backoff'],
    ['TableFailed', 'cannot drop table orders because other objects depend on it (SQLSTATE 2BP01) [tenant x, mirror, table orders, wipe]', null],
  ])('a wipe failing with %s waits with backoff instead of trying again at once; resume retries it', async (type, message, history) => {
    const stubs = new Stubs();
    let rotated = true;
    const base = stubs.activities();
    const activities: TenantActivities = {
      ...base,
      wipeTables: async (tenant, input) => {
        if (rotated) {
          stubs.calls.push('wipe:refused');
          throw ApplicationFailure.create({ type, message, nonRetryable: true, details: [{ tenant: 'x', table: 'orders', operation: 'wipe', side: 'mirror' }] });
        }
        return base.wipeTables(tenant, input);
      },
    };
    stubs.activities = () => activities;
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      await handle.executeUpdate(forceWipeUpdate, { args: [{}] });
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'blocked');
      expect((await handle.query(statusQuery)).reason).toBe(`wipe failed (attempt 1, next in 10 s): ${message}`);
      await new Promise((r) => setTimeout(r, 2_000));
      // One refused login, not one per workflow task.
      expect(stubs.calls.filter((c) => c === 'wipe:refused')).toHaveLength(1);
      rotated = false;
      await handle.signal(resumeSignal);
      await waitFor(async () => stubs.calls.includes('wipe') && stateOf(await handle.query(statusQuery)) === 'mirroring');
      expect((await handle.query(statusQuery)).pendingWipe).toBeNull();
      if (history) await recordHistory(handle, history);
      await handle.terminate('test done');
    });
  });

  it('blocks on bad credentials without retrying, and tries again on resume', async () => {
    const stubs = new Stubs();
    let credentialsFixed = false;
    stubs.prepare = async () => {
      if (!credentialsFixed) {
        throw ApplicationFailure.create({ type: 'AuthFailed', message: 'password authentication failed [tenant x, source]', nonRetryable: true });
      }
      return plan();
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'blocked');
      expect((await handle.query(statusQuery)).reason).toMatch(/password authentication failed/);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(stubs.calls.filter((c) => c === 'prepare')).toHaveLength(1);
      credentialsFixed = true;
      await handle.signal(resumeSignal);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring');
      await recordHistory(handle, 'blocked-auth');
      await handle.terminate('test done');
    });
  });

  it('pauses on a restored source when the policy says so', async () => {
    const stubs = new Stubs();
    stubs.prepare = async () =>
      plan({
        policy: { pollIntervalMs: 200, retentionMs: 7 * 24 * 3600 * 1000, onSourceRestore: 'pause' },
        tables: [{ name: 'customers', action: 'populate', reason: 'source restored', detail: 'source fingerprint changed (timeline)' }],
        sourceRestored: 'source fingerprint changed (timeline)',
      });
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'paused');
      expect((await handle.query(statusQuery)).reason).toMatch(/source restored: source fingerprint changed/);
      expect(stubs.calls).toEqual(['prepare']);
      await recordHistory(handle, 'restore-pause');
      await handle.terminate('test done');
    });
  });

  it('an IncompatibleSchema failure from the session sends the tenant back through bootstrap', async () => {
    const stubs = new Stubs();
    let failed = false;
    stubs.session = async () => {
      if (!failed) {
        failed = true;
        throw ApplicationFailure.create({ type: 'IncompatibleSchema', message: 'incompatible schema change [table orders]', nonRetryable: true });
      }
      return stubs.idleSession();
    };
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stubs.calls.filter((c) => c.startsWith('session')).length === 2);
      expect(stubs.calls.filter((c) => c === 'prepare')).toHaveLength(2);
      await recordHistory(handle, 'incompatible-schema');
      await handle.terminate('test done');
    });
  });
});

describe('parallel population', () => {
  it('populates two tables at a time, and a failure in one stops new ones and sends the tenant back to bootstrap', async () => {
    const stubs = new Stubs();
    let running = 0;
    let maxRunning = 0;
    let failOnce = true;
    stubs.prepare = async () =>
      plan({ tables: ['a', 'b', 'c', 'd'].map((name) => ({ name, action: 'populate' as const, reason: 'new table' as const })) });
    const base = stubs.activities();
    const activities: TenantActivities = {
      ...base,
      populateTable: async (tenant, table) => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        try {
          await new Promise((r) => setTimeout(r, 150));
          if (table === 'b' && failOnce) {
            failOnce = false;
            throw ApplicationFailure.create({ type: 'TrackingExpired', message: 'changes are gone [table b]', nonRetryable: true });
          }
          return await base.populateTable(tenant, table);
        } finally {
          running -= 1;
        }
      },
    };
    stubs.activities = () => activities;
    await withWorker(stubs, async (tq) => {
      const handle = await start(tq);
      await waitFor(async () => stateOf(await handle.query(statusQuery)) === 'mirroring', { timeoutMs: 20_000 });
      expect(maxRunning).toBe(2);
      // After b failed, bootstrap ran again and every table was populated.
      expect(stubs.calls.filter((c) => c === 'prepare')).toHaveLength(2);
      const status = await handle.query(statusQuery);
      expect(status.tables.filter((t) => ['a', 'b', 'c', 'd'].includes(t.name)).every((t) => t.state === 'mirroring')).toBe(true);
      await recordHistory(handle, 'parallel-population');
      await handle.terminate('test done');
    });
  });
});
