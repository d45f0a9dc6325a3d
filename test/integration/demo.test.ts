/**
 * The demo end to end at a small size: real PostgreSQL servers, the shared Temporal dev server, the real worker.
 * runDemo stops on its own once every mirrored table's count and checksum (plain SQL on both sides) match the
 * source after a burst of live changes; then everything it started must be stopped.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectClient } from '../../src/client';
import { CRM_TABLES, REFRESHED_TABLE, planCounts } from '../../dev/demo/crm';
import { DEMO_TENANT, runDemo } from '../../dev/demo/run';
import { workflowIdFor } from '../../contract';
import { sharedTemporal } from '../support/temporal';

describe('demo', () => {
  it('populates the CRM, carries live changes until the mirror equals the source, and stops what it started', async () => {
    const { address, namespace, workflowBundlePath } = sharedTemporal();
    const dataDir = join(process.cwd(), '.data', 'test', 'demo');
    const rows = 3_000;

    // Any free port: the endpoint is the worker's usual one, its address is the test's choice.
    process.env.TENANT_MIRROR_METRICS = '127.0.0.1:0';
    const result = await runDemo({ rows, untilSynced: true, liveMs: 3_000, dataDir, temporal: { address, namespace }, workflowBundlePath });

    const counts = planCounts(rows);
    expect([...result.mirroredTables].sort()).toEqual([...CRM_TABLES].sort());
    // The table without a key is mirrored too, by periodic refresh instead of change tracking.
    expect(result.refreshed).toEqual([REFRESHED_TABLE]);
    expect(result.skipped).toEqual([]);
    expect(result.populatedRows).toBe(CRM_TABLES.reduce((sum, t) => sum + counts[t], 0));
    expect(result.liveChanges).toBeGreaterThan(0);
    expect(result.inSync).toBe(true);
    expect(result.mirrorRows).toBe(result.sourceRows);
    // Metrics, the partner hook and _mirror_log at work in the demo.
    expect(result.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(result.rowsApplied).toBeGreaterThan(0);
    expect(result.hookIndex).toBe(true);
    expect(result.mirrorLogRows).toBeGreaterThan(CRM_TABLES.length);

    // Stopped: both servers shut down, the workflow terminated.
    expect(existsSync(join(dataDir, 'source', 'data', 'postmaster.pid'))).toBe(false);
    expect(existsSync(join(dataDir, 'mirror', 'data', 'postmaster.pid'))).toBe(false);
    const { client, close } = await connectClient(address, namespace);
    try {
      const description = await client.workflow.getHandle(workflowIdFor(DEMO_TENANT)).describe();
      expect(description.status.name).toBe('TERMINATED');
    } finally {
      await close();
    }
  });
});
