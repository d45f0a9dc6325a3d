/**
 * A population killed halfway (the worker process is SIGKILLed mid-copy) resumes on the next worker from its
 * last committed key instead of starting over, and the swapped-in table equals the source — copied in one
 * stream, and split into key ranges copied at once (each range resumes after its own last key). The workers are
 * the real CLI (`bin/tenant-mirror.js worker`) in child processes.
 */
import '../support/quiet-runtime';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { startTenant } from '../../src/client';
import { statusQuery, workflowIdFor, type PopulateResult } from '../../contract';
import { startPgPair, type PgPair } from '../support/pg';
import { sharedTemporal } from '../support/temporal';
import { query, tableChecksum } from '../support/checksum';
import { waitFor } from '../support/wait';

const temporal = sharedTemporal();
/** One tenant per way of copying, each with its own source database and mirror schema. */
const CASES = [
  { tenant: 'resume-test', database: 'app', schema: 'mirror', split: false },
  { tenant: 'resume-split', database: 'app_split', schema: 'mirror_split', split: true },
] as const;
let pg: PgPair;
const sourceUrls = new Map<string, string>();
let mirrorUrl: string;
let configPath: string;
let connection: Connection;
let client: Client;

/** The real CLI worker, on the real task queue, as its own process. */
function runWorker(): ChildProcess {
  const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'tenant-mirror.js'), 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: temporal.namespace, TENANT_MIRROR_CONFIG: configPath, TENANT_MIRROR_METRICS: 'off', LOG_LEVEL: 'warn', LOG_JSON: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', () => undefined);
  return child;
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGKILL');
  });
}

beforeAll(async () => {
  pg = await startPgPair('populate-resume');
  mirrorUrl = await pg.mirror.createDatabase('partner');
  for (const c of CASES) {
    sourceUrls.set(c.tenant, await pg.source.createDatabase(c.database));
    // ANALYZE: a table is split by its planner estimate, which a never-analyzed table does not have.
    await pg.source.sql(
      `CREATE TABLE big (id integer PRIMARY KEY, payload text NOT NULL, n numeric(12,2));
       INSERT INTO big SELECT g, repeat(md5(g::text), 4), g / 3.0 FROM generate_series(1, 300000) g;
       ANALYZE big;`,
      c.database,
    );
  }
  const dir = join(process.cwd(), '.data', 'test', 'populate-resume');
  mkdirSync(dir, { recursive: true });
  configPath = join(dir, 'tenants.yaml');
  // Small batches: many commits (resume points) in a table of ~45 MB.
  writeFileSync(configPath, stringify({
    tenants: CASES.map((c) => ({
      id: c.tenant,
      source: { kind: 'postgres', url: sourceUrls.get(c.tenant) },
      mirror: { kind: 'postgres', url: mirrorUrl, schema: c.schema },
      pollInterval: '200ms',
      batchBytes: '256KB',
      ...(c.split ? { populateStreams: 3, splitRows: 100_000 } : { populateStreams: 1 }),
    })),
  }));
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: temporal.namespace });
});
afterAll(async () => {
  for (const c of CASES) await client?.workflow.getHandle(workflowIdFor(c.tenant)).terminate('test done').catch(() => undefined);
  await connection?.close();
  await pg?.stop();
});

describe.each(CASES)('population resume ($tenant)', ({ tenant, schema, split }) => {
  it('continues from the last committed key after the worker is killed mid-copy', { timeout: 240_000 }, async () => {
    const shadow = `${schema}."_shadow_big"`;
    const first = runWorker();
    expect(await startTenant(client, tenant)).toBe('started');
    const handle = client.workflow.getHandle(workflowIdFor(tenant));

    // Let part of the table reach the shadow, then take the worker away.
    let copiedBeforeCrash = 0;
    await waitFor(async () => {
      const rows = await query<{ n: string }>(mirrorUrl, `SELECT count(*)::text AS n FROM ${shadow}`).catch(() => [{ n: '0' }]);
      copiedBeforeCrash = Number(rows[0]!.n);
      return copiedBeforeCrash > 20_000;
    }, { intervalMs: 20, timeoutMs: 90_000, what: 'the population to be under way' });
    await kill(first);
    const afterCrash = Number((await query<{ n: string }>(mirrorUrl, `SELECT count(*)::text AS n FROM ${shadow}`))[0]!.n);
    expect(afterCrash).toBeGreaterThan(0);
    expect(afterCrash).toBeLessThan(300_000);
    // The shadow's marker tells how the copy was made: three ranges, each with rows of its own, none finished.
    const marker = JSON.parse((await query<{ m: string }>(mirrorUrl, `SELECT obj_description('${shadow}'::regclass, 'pg_class') AS m`))[0]!.m) as {
      ranges?: { rows: number; done: boolean }[];
    };
    if (split) {
      expect(marker.ranges).toHaveLength(3);
      expect(marker.ranges!.filter((r) => r.rows > 0).length).toBeGreaterThan(1);
    } else {
      expect(marker.ranges).toBeUndefined();
    }

    // The server notices the dead worker by its missing heartbeat, then the retry lands on the new worker.
    const second = runWorker();
    try {
      await waitFor(async () => (await handle.query(statusQuery)).state === 'mirroring', { timeoutMs: 120_000, intervalMs: 500, what: 'population to finish' });
      const [src, dst] = await Promise.all([tableChecksum(sourceUrls.get(tenant)!, 'big', 'id'), tableChecksum(mirrorUrl, `${schema}.big`, 'id')]);
      expect(dst).toEqual(src);
      expect(dst.rows).toBe(300_000);

      // The history tells how: the completed population says it resumed.
      const history = await handle.fetchHistory();
      const converter = client.options.loadedDataConverter.payloadConverter;
      const results = (history.events ?? [])
        .filter((e) => e.activityTaskCompletedEventAttributes)
        .map((e) => converter.fromPayload<unknown>(e.activityTaskCompletedEventAttributes!.result!.payloads![0]!))
        .filter((r): r is PopulateResult => typeof r === 'object' && r !== null && 'resumed' in r);
      expect(results).toHaveLength(1);
      expect(results[0]).toMatchObject({ table: 'big', rows: 300_000, resumed: true });
    } finally {
      await kill(second);
    }
  });
});
