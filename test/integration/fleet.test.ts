/**
 * Several workers share the tenants (issue 10): worker processes on one task queue, each its own process group.
 * A worker killed with SIGKILL has its sessions moved to the other by the fleet's reaper (Temporal's worker
 * heartbeats), long before the sessions' heartbeat timeout; a worker stopped with SIGTERM drains (its sessions
 * stop between two commits and are retried at once elsewhere) and exits cleanly; a worker restarted under its
 * stable identity reclaims its own sessions at start. Through all of it every change arrives, once. With every
 * worker gone, `list` and `status` say `stale` (with the age) instead of `mirroring`, answering without a worker.
 */
import './../support/quiet-runtime';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { workflowIdFor } from '../../contract';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import { spawnWorker, type SpawnedWorker } from '../../dev/worker-spawn';
import { startPgPair, type PgPair } from '../support/pg';
import { sharedTemporal } from '../support/temporal';
import { query, tableChecksum } from '../support/checksum';
import { waitFor } from '../support/wait';
import { mirrorRelation } from '../../src/postgres/mirror-sql';

const { PendingActivityState } = temporal.api.enums.v1;
const exec = promisify(execFile);
const TENANTS = ['f1', 'f2', 'f3', 'f4'];
const dir = join(process.cwd(), '.data', 'test', 'fleet');
const taskQueue = `fleet-${process.pid}`;
let pg: PgPair;
let sourceUrl: string;
let mirrorUrl: string;
let client: Client;
let connection: Connection;
const workers = new Set<SpawnedWorker>();
const tenantsFile = join(dir, 'tenants.yaml');
const temporalServer = sharedTemporal();
/** The tenant's table in its mirror schema (a source table outside public keeps its schema in its name). */
const mirrored = (t: string): string => `"m_${t}"."${mirrorRelation(`${t}.events`)}"`;

async function startWorker(identity: string, maxActivities: number): Promise<SpawnedWorker> {
  const w = await spawnWorker({
    temporalAddress: temporalServer.address,
    namespace: temporalServer.namespace,
    taskQueue,
    workflowBundlePath: temporalServer.workflowBundlePath,
    tenantsFile,
    identity,
    maxActivities,
    logFile: join(dir, `${identity}.log`),
  });
  workers.add(w);
  void w.exited.then(() => workers.delete(w));
  return w;
}

/** Which worker runs each tenant's sync session now (only sessions a worker has started). */
async function sessionHosts(): Promise<Map<string, { worker: string; attempt: number; lastFailure: string | null }>> {
  const hosts = new Map<string, { worker: string; attempt: number; lastFailure: string | null }>();
  for (const t of TENANTS) {
    const d = await client.workflow
      .getHandle(workflowIdFor(`fleet-${t}`))
      .describe()
      .catch(() => null); // not started yet
    if (!d) continue;
    const s = (d.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'syncSession' && p.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED);
    if (s?.lastWorkerIdentity) hosts.set(t, { worker: s.lastWorkerIdentity, attempt: s.attempt ?? 0, lastFailure: s.lastFailure?.message ?? null });
  }
  return hosts;
}

async function waitHosted(expected: Record<string, string>, what: string, timeoutMs = 90_000): Promise<void> {
  await waitFor(
    async () => {
      const hosts = await sessionHosts();
      return Object.entries(expected).every(([t, w]) => hosts.get(t)?.worker === w);
    },
    { timeoutMs, intervalMs: 500, what },
  );
}

const cli = (...args: string[]) =>
  exec('npx', ['tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, TENANT_MIRROR_CONFIG: tenantsFile, TEMPORAL_ADDRESS: temporalServer.address, TEMPORAL_NAMESPACE: temporalServer.namespace },
  });
const list = async (): Promise<{ tenantId: string; state: string; staleSeconds: number | null; worstLagSeconds: number | null; tables: { mirroring: number } }[]> =>
  JSON.parse((await cli('list', '--json')).stdout);

let seq = 0;
/** One write per tenant, and the wait until every mirror holds it. */
async function writesArrive(what: string): Promise<void> {
  seq += 1;
  for (const t of TENANTS) await query(sourceUrl, `INSERT INTO ${t}.events (id, note) VALUES (${seq}, 'after ${what}')`);
  await waitFor(
    async () => {
      for (const t of TENANTS) {
        const rows = await query<{ n: string }>(mirrorUrl, `SELECT count(*)::text AS n FROM ${mirrored(t)} WHERE id = ${seq}`);
        if (rows[0]?.n !== '1') return false;
      }
      return true;
    },
    { timeoutMs: 90_000, intervalMs: 250, what: `the write after ${what} in every mirror` },
  );
}

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  pg = await startPgPair('fleet');
  sourceUrl = await pg.source.createDatabase('fleet_src');
  mirrorUrl = await pg.mirror.createDatabase('fleet_dst');
  for (const t of TENANTS) {
    await query(sourceUrl, `CREATE SCHEMA ${t}; CREATE TABLE ${t}.events (id bigint PRIMARY KEY, note text); INSERT INTO ${t}.events SELECT -g, 'seed' FROM generate_series(1, 500) g`);
  }
  const tenants = TENANTS.map((t) => ({
    id: `fleet-${t}`,
    source: { kind: 'postgres', url: sourceUrl },
    mirror: { kind: 'postgres', url: mirrorUrl, schema: `m_${t}` },
    tables: { include: [`${t}.*`] },
    pollInterval: '300ms',
  }));
  writeFileSync(tenantsFile, stringify({ tenants }));
  connection = await Connection.connect({ address: temporalServer.address });
  client = new Client({ connection, namespace: temporalServer.namespace });
}, 120_000);

afterAll(async () => {
  for (const t of TENANTS) await client?.workflow.getHandle(workflowIdFor(`fleet-${t}`)).terminate('test done').catch(() => undefined);
  await Promise.all([...workers].map((w) => w.kill()));
  await connection?.close();
  await pg?.stop();
});

describe('two workers share the tenants', () => {
  it('SIGKILL moves the dead worker’s sessions; SIGTERM drains; a restart under the same identity reclaims its own', async () => {
    const start = (t: string) =>
      client.workflow.start(tenantMirrorWorkflow, { workflowId: workflowIdFor(`fleet-${t}`), taskQueue, args: [{ tenantId: `fleet-${t}` }] });
    // Worker a has two activity slots: the sessions of f1 and f2 fill it, so f3 and f4 go to worker b.
    let a = await startWorker('fleet-a', 2);
    await start('f1');
    await start('f2');
    await waitHosted({ f1: 'fleet-a', f2: 'fleet-a' }, 'f1 and f2 on worker a');
    const b = await startWorker('fleet-b', 8);
    await start('f3');
    await start('f4');
    await waitHosted({ f1: 'fleet-a', f2: 'fleet-a', f3: 'fleet-b', f4: 'fleet-b' }, 'f3 and f4 on worker b');
    await writesArrive('start');

    // A crash: worker b's reaper sees a's heartbeats stop and fails its sessions by id; b runs them.
    await a.kill();
    await waitHosted({ f1: 'fleet-b', f2: 'fleet-b', f3: 'fleet-b', f4: 'fleet-b' }, "a's sessions moved to b", 90_000);
    const moved = await sessionHosts();
    expect(moved.get('f1')?.lastFailure).toMatch(/the worker fleet-a running this attempt stopped/);
    await writesArrive('worker a was killed');

    // A deploy: b drains and exits by itself; its sessions end between commits and go on on a (started again).
    a = await startWorker('fleet-a', 8);
    await b.stop(30_000);
    expect(await b.exited).toBe(0);
    await waitHosted({ f1: 'fleet-a', f2: 'fleet-a', f3: 'fleet-a', f4: 'fleet-a' }, "b's sessions moved to a after its SIGTERM", 60_000);
    expect((await sessionHosts()).get('f3')?.lastFailure).toMatch(/the worker is shutting down/);
    await writesArrive('worker b was stopped');

    // A restart under the same identity: the new process reclaims what the killed one left, with nobody else up.
    const before = await sessionHosts();
    await a.kill();
    a = await startWorker('fleet-a', 8);
    await waitFor(
      async () => {
        const now = await sessionHosts();
        return TENANTS.every((t) => now.get(t)?.worker === 'fleet-a' && now.get(t)!.attempt > before.get(t)!.attempt);
      },
      { timeoutMs: 90_000, intervalMs: 500, what: 'the restarted worker a running its sessions again' },
    );
    await writesArrive('worker a was restarted');

    for (const t of TENANTS) {
      const [src, dst] = await Promise.all([tableChecksum(sourceUrl, `${t}.events`, 'id'), tableChecksum(mirrorUrl, mirrored(t), 'id')]);
      expect(dst).toEqual(src);
    }

    // The list while healthy: every tenant mirroring, its lag known.
    const healthy = await list();
    expect(healthy.map((e) => e.state)).toEqual(TENANTS.map(() => 'mirroring'));
    expect(healthy.every((e) => typeof e.worstLagSeconds === 'number' && e.tables.mirroring === 1)).toBe(true);

    // The last worker stops: the sessions wait for a worker that does not come, and the list says so.
    await a.stop(30_000);
    await waitFor(async () => (await list()).every((e) => e.state === 'stale'), { timeoutMs: 90_000, intervalMs: 2_000, what: 'every tenant listed stale' });
    const stale = await list();
    expect(stale[0]!.staleSeconds).toBeGreaterThan(0);
    const status = JSON.parse((await cli('status', 'fleet-f1', '--json')).stdout) as { state: string; stale: { why: string } }[];
    expect(status[0]!.stale.why).toMatch(/no worker has started the sync session for \d+ s/);
  }, 600_000);
});
