/**
 * One tenant on real servers: a source and a mirror PostgreSQL server, a tenants file, the real worker (real
 * activities, real workflow bundle) on the run's Temporal dev server, and a client. Integration tests drive the
 * source with SQL and watch the mirror converge.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { createWorker, defaultDeps } from '../../src/worker';
import { startPgPair, type PgPair } from './pg';
import { sharedTemporal } from './temporal';
import { query, tableChecksum, type TableChecksum } from './checksum';
import { waitFor } from './wait';
import { statusQuery, workflowIdFor, type MirrorState, type TenantStatus } from '../../contract';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import type { TenantConfigInput } from '../../src/config/schema';
import type { Logger } from '../../src/logging';

export interface Harness {
  pg: PgPair;
  tenantId: string;
  mirrorSchema: string;
  sourceUrl: string;
  mirrorUrl: string;
  client: Client;
  configPath: string;
  workflowId: string;
  temporalAddress: string;
  namespace: string;
  startTenant(): Promise<void>;
  /** Runs SQL on the source / mirror database by URL (the server behind the URL may have been replaced). */
  sourceSql(text: string): Promise<void>;
  mirrorSql(text: string): Promise<void>;
  /** Waits for the workflow's status to satisfy `check` (a state name or a predicate). */
  waitStatus(check: MirrorState | ((s: TenantStatus) => boolean), what?: string, timeoutMs?: number): Promise<TenantStatus>;
  status(): Promise<TenantStatus>;
  /** Waits until the tenant mirrors and every listed table's checksum equals the source's. */
  waitConverged(tables: { name: string; orderBy: string; sourceName?: string }[], timeoutMs?: number): Promise<Record<string, TableChecksum>>;
  writeConfig(overrides?: Partial<TenantConfigInput>): void;
  stop(): Promise<void>;
}

export async function startHarness(
  name: string,
  overrides: Partial<TenantConfigInput> = {},
  opts: { logger?: Logger; sourceSettings?: Record<string, string> } = {},
): Promise<Harness> {
  const pg = await startPgPair(name, opts.sourceSettings);
  const sourceUrl = await pg.source.createDatabase('app');
  const mirrorUrl = await pg.mirror.createDatabase('partner');
  const tenantId = `${name}-${randomUUID().slice(0, 6)}`;
  const mirrorSchema = 'mirror';
  const dir = join(process.cwd(), '.data', 'test', name);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'tenants.yaml');
  const writeConfig = (more: Partial<TenantConfigInput> = {}): void => {
    const tenant: TenantConfigInput = {
      id: tenantId,
      source: { kind: 'postgres', url: sourceUrl },
      mirror: { kind: 'postgres', url: mirrorUrl, schema: mirrorSchema },
      pollInterval: '200ms',
      ...overrides,
      ...more,
    };
    writeFileSync(configPath, stringify({ tenants: [tenant] }));
  };
  writeConfig();

  const temporal = sharedTemporal();
  const taskQueue = `it-${tenantId}`;
  const { worker, connection: nativeConnection } = await createWorker({
    address: temporal.address,
    namespace: temporal.namespace,
    taskQueue,
    workflowBundle: { codePath: temporal.workflowBundlePath },
    deps: { ...defaultDeps(configPath), ...(opts.logger ? { logger: opts.logger } : {}) },
  });
  const running = worker.run();
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  const handle = () => client.workflow.getHandle(workflowIdFor(tenantId));

  return {
    pg,
    tenantId,
    mirrorSchema,
    sourceUrl,
    mirrorUrl,
    client,
    configPath,
    workflowId: workflowIdFor(tenantId),
    temporalAddress: temporal.address,
    namespace: temporal.namespace,
    writeConfig,
    sourceSql: async (text) => void (await query(sourceUrl, text)),
    mirrorSql: async (text) => void (await query(mirrorUrl, text)),
    async waitStatus(check, what, timeoutMs = 60_000) {
      let last: TenantStatus | null = null;
      const ok = typeof check === 'string' ? (s: TenantStatus) => s.state === check : check;
      await waitFor(
        async () => {
          last = await handle().query(statusQuery);
          return ok(last);
        },
        { timeoutMs, intervalMs: 100, what: what ?? (typeof check === 'string' ? `state ${check}` : 'status') },
      );
      return last!;
    },
    async startTenant() {
      await client.workflow.start(tenantMirrorWorkflow, { workflowId: workflowIdFor(tenantId), taskQueue, args: [{ tenantId }] });
    },
    status: () => handle().query(statusQuery),
    async waitConverged(tables, timeoutMs = 60_000) {
      const result: Record<string, TableChecksum> = {};
      await waitFor(
        async () => {
          const status = await handle().query(statusQuery);
          if (status.state !== 'mirroring') return false;
          for (const t of tables) {
            const [src, dst] = await Promise.all([
              tableChecksum(sourceUrl, t.sourceName ?? quoteName(t.name), t.orderBy),
              tableChecksum(mirrorUrl, `${mirrorSchema}.${quoteName(t.name)}`, t.orderBy),
            ]);
            if (src.rows !== dst.rows || src.md5 !== dst.md5) return false;
            result[t.name] = dst;
          }
          return true;
        },
        { timeoutMs, intervalMs: 250, what: `mirror of ${tables.map((t) => t.name).join(', ')} to equal the source` },
      );
      return result;
    },
    async stop() {
      await handle().terminate('test done').catch(() => undefined);
      await shutdown(worker, running, nativeConnection);
      await connection.close();
      await pg.stop();
    },
  };
}

function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function shutdown(worker: Worker, running: Promise<void>, connection: NativeConnection): Promise<void> {
  worker.shutdown();
  await running.catch(() => undefined);
  await connection.close();
}
