/**
 * The faults of the chaos suite. Each one is injected while the write load runs, and (like an orchestrator)
 * whatever it took down is brought back at once: a killed worker is restarted under the same identity, a crashed
 * database is started again on its data directory, the Temporal server on its database file. A fault returns the
 * moment it struck; the suite then measures how long changes take to reach the mirror again.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { forceWipeUpdate, workflowIdFor } from '../../contract';
import type { EmbeddedPg } from '../../dev/embedded-postgres';
import type { SpawnedWorker } from '../../dev/worker-spawn';
import { q, sleep } from '../env';

export interface ChaosWorld {
  source: EmbeddedPg;
  sourceUrl: string;
  mirror: EmbeddedPg;
  mirrorUrl: string;
  /** The tenant's mirror schema. */
  mirrorSchema: string;
  client: () => Client;
  tenantId: string;
  workers: Map<string, SpawnedWorker>;
  startWorker(identity: string): Promise<void>;
  restartTemporal(kill: boolean): Promise<void>;
  log(line: string): void;
}

export interface Fault {
  name: string;
  /** The recovery target in seconds (issue 10), or null where none is set: reported, not judged. */
  targetSeconds: number | null;
  what: string;
  /** Returns when it struck; `after` runs once the changes arrived again (what to bring back only then). */
  inject(world: ChaosWorld): Promise<{ at: number; note?: string; after?: () => Promise<void> }>;
}

const { PendingActivityState } = temporal.api.enums.v1;

/** The worker running the tenant's `activityType` now (waits for one to be running). */
export async function hostOf(world: ChaosWorld, activityType: string, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const d = await world.client().workflow.getHandle(workflowIdFor(world.tenantId)).describe();
      const p = (d.raw.pendingActivities ?? []).find((a) => a.activityType?.name === activityType && a.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED);
      if (p?.lastWorkerIdentity && world.workers.has(p.lastWorkerIdentity)) return p.lastWorkerIdentity;
    } catch {
      // Temporal briefly away
    }
    if (Date.now() > deadline) throw new Error(`no ${activityType} running within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

async function killAndRestart(world: ChaosWorld, identity: string, how: 'kill' | 'stop'): Promise<number> {
  const worker = world.workers.get(identity)!;
  const at = performance.now();
  if (how === 'kill') await worker.kill();
  else await worker.stop(30_000);
  world.workers.delete(identity);
  await world.startWorker(identity);
  return at;
}

/** Waits until `table` exists and holds committed rows (a population's shadow has its first chunk). */
async function waitForRows(world: ChaosWorld, table: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await q<{ n: boolean }>(world.mirrorUrl, `SELECT to_regclass($1) IS NOT NULL AND EXISTS (SELECT 1 FROM ${table} LIMIT 1) AS n`, [table]).catch(() => [{ n: false }]);
    if (rows[0]?.n) return;
    if (Date.now() > deadline) throw new Error(`${table} had no committed rows within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

export const FAULTS: Fault[] = [
  {
    name: 'worker SIGKILL',
    targetSeconds: 30,
    what: 'the worker running the sync session is killed (SIGKILL) and restarted under the same identity',
    async inject(world) {
      return { at: await killAndRestart(world, await hostOf(world, 'syncSession'), 'kill') };
    },
  },
  {
    name: 'worker SIGTERM',
    targetSeconds: 10,
    what: 'the worker running the sync session is stopped (SIGTERM, a deploy: it drains) and started again',
    async inject(world) {
      return { at: await killAndRestart(world, await hostOf(world, 'syncSession'), 'stop') };
    },
  },
  {
    name: 'worker SIGKILL mid-batch',
    targetSeconds: 30,
    what: 'a 20,000-row UPDATE commits at the source; the session worker is killed while it applies it',
    async inject(world) {
      const host = await hostOf(world, 'syncSession');
      await q(world.sourceUrl, `UPDATE big SET payload = md5(payload) || substr(payload, 33) WHERE id <= 20000`);
      await sleep(400);
      return { at: await killAndRestart(world, host, 'kill') };
    },
  },
  {
    name: 'worker SIGKILL mid-population',
    targetSeconds: 30,
    what: 'a forced wipe of table big; the worker populating it is killed after its first committed chunks',
    async inject(world) {
      const handle = world.client().workflow.getHandle(workflowIdFor(world.tenantId));
      await handle.executeUpdate(forceWipeUpdate, { args: [{ tables: ['big'] }] });
      const host = await hostOf(world, 'populateTable');
      // A chunk must have committed, so there is a resume point: the shadow's committed rows are visible here.
      await waitForRows(world, `${world.mirrorSchema}._shadow_big`, 120_000);
      return { at: await killAndRestart(world, host, 'kill'), note: 'population resumed from its last committed chunk' };
    },
  },
  {
    name: 'second worker killed',
    targetSeconds: 60,
    what: 'of the two workers, the one running the session is killed and not restarted: the other takes over',
    async inject(world) {
      const host = await hostOf(world, 'syncSession');
      const worker = world.workers.get(host)!;
      const at = performance.now();
      await worker.kill();
      world.workers.delete(host);
      return { at, note: 'restarted only after the takeover', after: () => world.startWorker(host) };
    },
  },
  {
    name: 'mirror crash',
    targetSeconds: null,
    what: 'the mirror PostgreSQL stops immediately (SIGQUIT: no checkpoint), and starts again after 2 s',
    async inject(world) {
      const at = performance.now();
      await world.mirror.crash();
      await sleep(2_000);
      await world.mirror.start();
      return { at };
    },
  },
  {
    name: 'source crash',
    targetSeconds: null,
    what: 'the source PostgreSQL stops immediately, and starts again after 2 s (writes fail meanwhile)',
    async inject(world) {
      const at = performance.now();
      await world.source.crash();
      await sleep(2_000);
      await world.source.start();
      return { at };
    },
  },
  {
    name: 'Temporal server SIGKILL',
    targetSeconds: null,
    what: 'the Temporal server is killed and restarted on its own database file',
    async inject(world) {
      const at = performance.now();
      await world.restartTemporal(true);
      return { at };
    },
  },
  {
    name: 'connections cut',
    targetSeconds: null,
    what: "every tenant-mirror connection on both databases is terminated (pg_terminate_backend)",
    async inject(world) {
      const at = performance.now();
      for (const url of [world.sourceUrl, world.mirror.url('chaos_mirror')]) {
        await q(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tenant-mirror' AND pid <> pg_backend_pid()`);
      }
      return { at };
    },
  },
];
