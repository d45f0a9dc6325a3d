/**
 * The 7-day rule on the time-skipping test server: a tenant whose syncs keep failing for longer than its
 * retention is wiped and repopulated, without any real waiting. Also checks that retries back off but never
 * for longer than a bounded interval (so recovery is noticed quickly once the mirror is back).
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { TenantActivities } from '../../contract';
import { SEARCH_ATTRIBUTES, statusQuery, type TenantPlan, type WipeInput } from '../../contract';
import { temporal } from '@temporalio/proto';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import { temporalTestServerPath } from '../../dev/temporal/binaries';
import { sharedTemporal } from '../support/temporal';

const DAY = 24 * 3600 * 1000;
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  const path = temporalTestServerPath();
  env = await TestWorkflowEnvironment.createTimeSkipping(
    path ? { server: { executable: { type: 'existing-path', path } } } : {},
  );
  // The test server knows only Temporal's own search attributes; register ours as the dev server does.
  const { KEYWORD, INT } = { KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, INT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT };
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [name, type === 'Int' ? INT : KEYWORD])),
  });
});
afterAll(async () => {
  await env?.teardown();
});

describe('retention timer (time-skipping server)', () => {
  it('wipes and repopulates everything after a week without a successful sync', async () => {
    const wipes: WipeInput[] = [];
    const sessionAttempts: number[] = [];
    const plan: TenantPlan = {
      policy: { pollIntervalMs: 5_000, retentionMs: 7 * DAY, onSourceRestore: 'repopulate' },
      tables: [{ name: 'customers', action: 'populate', reason: 'new table' }],
      skipped: [],
      dropped: [],
      sourceRestored: null,
    };
    let populated = 0;
    const activities: TenantActivities = {
      // Populated once; after that the table only needs mirroring, which keeps failing.
      prepareTenant: async () =>
        populated === 0 || wipes.length > 0 ? plan : { ...plan, tables: [{ name: 'customers', action: 'mirror' }] },
      populateTable: async (_t, table) => {
        populated += 1;
        return { table, rows: 1, lsn: '1', resumed: false, durationMs: 1 };
      },
      syncSession: async () => {
        sessionAttempts.push(await env.currentTimeMs());
        throw ApplicationFailure.create({ type: 'Unavailable', message: 'connection refused [mirror]' });
      },
      wipeTables: async (_t, input) => {
        wipes.push(input);
        return { wiped: input.tables };
      },
    };
    const taskQueue = `retention-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: { codePath: sharedTemporal().workflowBundlePath },
      activities,
    });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(tenantMirrorWorkflow, {
        workflowId: `tenant-mirror:retention-${randomUUID().slice(0, 6)}`,
        taskQueue,
        args: [{ tenantId: 'retention' }],
      });
      const startedAt = await env.currentTimeMs();
      await env.sleep(6 * DAY);
      expect(wipes).toEqual([]);
      expect((await handle.query(statusQuery)).state).toBe('mirroring');
      await env.sleep(2 * DAY);
      expect(wipes).toEqual([{ tables: 'all', reason: 'no sync within retention' }]);
      expect(populated).toBeGreaterThanOrEqual(2);
      const wipedAt = await env.currentTimeMs();
      expect(wipedAt - startedAt).toBeGreaterThan(7 * DAY);
      // Backoff is bounded: between consecutive attempts there is never more than 5 minutes (+ scheduling slack).
      const gaps = sessionAttempts.slice(1).map((t, i) => t - sessionAttempts[i]!);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(5 * 60_000 + 60_000);
      await handle.terminate('test done');
    });
  });
});
