/**
 * The worker as operators run it — the real CLI (`bin/tenant-mirror.js worker`) in its own process — with real
 * passwords: the source and mirror logins have passwords of their own, passed through the environment into the
 * tenants file's `${VAR}`s. A tenant is populated, changes are mirrored, a forced wipe and a TRUNCATE at the source
 * repopulate it, and a wrong mirror password blocks it (AuthFailed). Along the way:
 *
 * - the metrics endpoint (TENANT_MIRROR_METRICS) reports exactly the rows this test applied, the population, the
 *   session, the tables by state, the lag, the AuthFailed failure, and the Temporal SDK's own metrics;
 * - the hook's index survives the forced wipe, and the partner's own index and grant survive the repopulation;
 * - `_mirror_log` holds the populations, the changed cycle and the wipe;
 * - every line the worker wrote is JSON, lines about the tenant carry `tenantId` (and `table` where there is one),
 *   and no password appears anywhere in its output.
 */
import '../support/quiet-runtime';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { forceWipe, startTenant } from '../../src/client';
import { statusQuery, workflowIdFor, type TenantStatus } from '../../contract';
import { freePort } from '../../dev/embedded-postgres';
import { startPgPair, type PgPair } from '../support/pg';
import { sharedTemporal } from '../support/temporal';
import { query, tableChecksum } from '../support/checksum';
import { waitFor } from '../support/wait';
import { historyMark, waitForRun } from '../support/scenario-tools';

const temporal = sharedTemporal();
const TENANT = `observed-${process.pid}`;
// Passwords no other string in the run contains, so any appearance in the output is a leak.
const SOURCE_PASSWORD = 'Src-pw-7f3e9a1c-never-log-me';
const MIRROR_PASSWORD = 'Mir-pw-2b8d4e6f-never-log-me';
const WRONG_PASSWORD = 'Wrong-pw-5c1a9e3d-never-log-me';
const SECRETS = [SOURCE_PASSWORD, MIRROR_PASSWORD, WRONG_PASSWORD];

let pg: PgPair;
let configPath: string;
let sourceUrl: string;
let mirrorUrl: string;
let metricsUrl: string;
let connection: Connection;
let client: Client;
let worker: ChildProcess | null = null;
const output: string[] = [];

function writeConfig(mirrorPassword: string): void {
  const tenant = {
    id: TENANT,
    source: { kind: 'postgres', url: `postgres://tm_reader:\${TM_SOURCE_PASSWORD}@127.0.0.1:${pg.source.port}/app` },
    mirror: {
      kind: 'postgres',
      url: `postgres://tm_partner:${mirrorPassword}@127.0.0.1:${pg.mirror.port}/partner`,
      schema: 'mirror',
      hooks: [{ tables: ['orders'], afterCreate: 'CREATE INDEX IF NOT EXISTS orders_by_customer ON {{table}} (customer_id)' }],
    },
    pollInterval: '200ms',
  };
  writeFileSync(configPath, stringify({ tenants: [tenant] }), { mode: 0o600 });
}

function startWorker(port: number): ChildProcess {
  const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'tenant-mirror.js'), 'worker'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TENANT_MIRROR_CONFIG: configPath,
      TENANT_MIRROR_METRICS: `127.0.0.1:${port}`,
      TM_SOURCE_PASSWORD: SOURCE_PASSWORD,
      LOG_LEVEL: 'debug',
      LOG_JSON: '1',
    },
    // Its own process group, ended in afterAll whatever happens.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines.filter((l) => l.length > 0));
    });
    stream?.on('end', () => partial && output.push(partial));
  }
  return child;
}

async function stopWorker(): Promise<void> {
  const child = worker;
  worker = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((done) => {
    const kill = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(kill);
      done();
    });
    if (child.pid) process.kill(-child.pid, 'SIGTERM');
  });
}

async function scrape(): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** A sample's value in exposition text, by name and exact labels (in any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const status = (): Promise<TenantStatus> => client.workflow.getHandle(workflowIdFor(TENANT)).query(statusQuery);

async function converged(): Promise<void> {
  await waitFor(
    async () => {
      if ((await status()).state !== 'mirroring') return false;
      const [src, dst] = await Promise.all([tableChecksum(sourceUrl, 'orders', 'id'), tableChecksum(mirrorUrl, 'mirror.orders', 'id')]);
      return src.rows === dst.rows && src.md5 === dst.md5;
    },
    { timeoutMs: 90_000, intervalMs: 250, what: 'the mirror of orders to equal the source' },
  );
}

beforeAll(async () => {
  pg = await startPgPair('observability');
  sourceUrl = await pg.source.createDatabase('app');
  mirrorUrl = await pg.mirror.createDatabase('partner');
  // Logins of their own, with passwords (superusers: tracking installs triggers and schemas).
  await pg.source.sql(`CREATE ROLE tm_reader LOGIN SUPERUSER PASSWORD '${SOURCE_PASSWORD}'`);
  await pg.mirror.sql(`CREATE ROLE tm_partner LOGIN SUPERUSER PASSWORD '${MIRROR_PASSWORD}'; CREATE ROLE reporting`);
  await pg.source.sql(
    `CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric(10,2));
     INSERT INTO orders SELECT g, g % 13, g * 1.5 FROM generate_series(1, 200) g;`,
    'app',
  );
  const dir = join(process.cwd(), '.data', 'test', 'observability');
  mkdirSync(dir, { recursive: true });
  configPath = join(dir, 'tenants.yaml');
  writeConfig('${TM_MIRROR_PASSWORD}');
  // The mirror password reaches the worker through its environment too.
  process.env.TM_MIRROR_PASSWORD = MIRROR_PASSWORD;
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  worker = startWorker(port);
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: temporal.namespace });
  await waitFor(async () => (await fetch(metricsUrl).then((r) => r.ok).catch(() => false)), { timeoutMs: 60_000, what: 'the metrics endpoint' });
  expect(await startTenant(client, TENANT)).toBe('started');
  await converged();
}, 180_000);

afterAll(async () => {
  await client?.workflow.getHandle(workflowIdFor(TENANT)).terminate('test done').catch(() => undefined);
  await stopWorker();
  await connection?.close();
  await pg?.stop();
  delete process.env.TM_MIRROR_PASSWORD;
});

describe('metrics', () => {
  it('report the population, the rows this test applied by operation, the session, the tables and the lag', async () => {
    const labels = { tenant: TENANT, table: 'orders' };
    await waitFor(async () => sample(await scrape(), 'tenant_mirror_population_rows_total', labels) === 200, { what: 'population rows' });
    await query(
      sourceUrl,
      `BEGIN;
       INSERT INTO orders SELECT g, 1, 1 FROM generate_series(1001, 1030) g;
       UPDATE orders SET total = total + 1 WHERE id BETWEEN 1 AND 20;
       DELETE FROM orders WHERE id BETWEEN 181 AND 190;
       COMMIT;`,
    );
    await converged();
    let text = '';
    await waitFor(
      async () => {
        text = await scrape();
        return sample(text, 'tenant_mirror_rows_applied_total', { ...labels, operation: 'delete' }) === 10;
      },
      { what: 'the applied deletes in the metrics' },
    );
    expect(sample(text, 'tenant_mirror_rows_applied_total', { ...labels, operation: 'insert' })).toBe(30);
    expect(sample(text, 'tenant_mirror_rows_applied_total', { ...labels, operation: 'update' })).toBe(20);
    expect(sample(text, 'tenant_mirror_population_bytes_total', labels)).toBeGreaterThan(200 * 8);
    expect(sample(text, 'tenant_mirror_sessions_running')).toBe(1);
    expect(sample(text, 'tenant_mirror_tables', { tenant: TENANT, state: 'mirroring' })).toBe(1);
    expect(sample(text, 'tenant_mirror_tables', { tenant: TENANT, state: 'failed' })).toBe(0);
    expect(sample(text, 'tenant_mirror_lag_seconds', labels)).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'tenant_mirror_sync_cycles_total', { tenant: TENANT })).toBeGreaterThan(0);
    // The Temporal SDK's own metrics, on the same endpoint.
    expect(text).toMatch(/^temporal_[a-z_]+(\{| )/m);
    expect(text).toContain('# TYPE tenant_mirror_rows_applied_total counter');
  });
});

describe('partner objects through the workflow', () => {
  it("the hook's index survives a forced wipe", async () => {
    const mark = await historyMark(client, workflowIdFor(TENANT));
    await forceWipe(client, TENANT);
    await waitForRun(client, workflowIdFor(TENANT), mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    await converged();
    expect(await query(mirrorUrl, `SELECT indexname FROM pg_indexes WHERE schemaname = 'mirror' AND tablename = 'orders' ORDER BY 1`)).toEqual([
      { indexname: '_pk_orders' },
      { indexname: 'orders_by_customer' },
    ]);
  });

  it("the partner's own index and grant survive a repopulation (a TRUNCATE at the source)", async () => {
    await query(mirrorUrl, `CREATE INDEX partner_totals ON mirror.orders (total); GRANT SELECT ON mirror.orders TO reporting`);
    const mark = await historyMark(client, workflowIdFor(TENANT));
    await query(sourceUrl, `TRUNCATE orders; INSERT INTO orders SELECT g, g % 5, g FROM generate_series(1, 50) g`);
    await waitForRun(client, workflowIdFor(TENANT), mark, (r) => r.name === 'populateTable' && r.outcome === 'completed', 'the repopulation');
    await converged();
    expect((await query<{ indexname: string }>(mirrorUrl, `SELECT indexname FROM pg_indexes WHERE schemaname = 'mirror' AND tablename = 'orders' ORDER BY 1`)).map((r) => r.indexname)).toEqual([
      '_pk_orders',
      'orders_by_customer',
      'partner_totals',
    ]);
    expect(await query(mirrorUrl, `SELECT has_table_privilege('reporting', 'mirror.orders', 'SELECT') AS ok`)).toEqual([{ ok: true }]);
  });

  it('_mirror_log holds the populations, the changed cycle and the wipe', async () => {
    const rows = await query<{ event: string; n: number }>(mirrorUrl, `SELECT event, count(*)::int AS n FROM mirror._mirror_log WHERE table_name = 'orders' GROUP BY 1 ORDER BY 1`);
    const byEvent = Object.fromEntries(rows.map((r) => [r.event, r.n]));
    expect(byEvent.populate).toBe(3);
    expect(byEvent.wipe).toBe(1);
    expect(byEvent.sync).toBeGreaterThanOrEqual(1);
    const applied = await query<{ i: number; u: number; d: number }>(
      mirrorUrl,
      `SELECT sum(inserts)::int AS i, sum(updates)::int AS u, sum(deletes)::int AS d FROM mirror._mirror_log WHERE event = 'sync'`,
    );
    expect(applied).toEqual([{ i: 30, u: 20, d: 10 }]);
  });
});

describe('a wrong password, and the logs', () => {
  it('a wrong mirror password blocks the tenant as AuthFailed, counted in the metrics', async () => {
    writeConfig(WRONG_PASSWORD);
    await waitFor(async () => (await status()).state === 'blocked', { timeoutMs: 90_000, intervalMs: 250, what: 'the tenant to be blocked' });
    expect((await status()).reason).toMatch(/AuthFailed|password authentication failed/);
    await waitFor(async () => (sample(await scrape(), 'tenant_mirror_failures_total', { tenant: TENANT, type: 'AuthFailed', operation: 'prepare' }) ?? 0) >= 1, {
      what: 'the AuthFailed failure in the metrics',
    });
  });

  it('every line is JSON, lines about the tenant carry its id, and no password appears anywhere', async () => {
    await stopWorker();
    expect(output.length).toBeGreaterThan(20);
    // The check can fail: a line with a password is found.
    expect(leaks([`{"msg":"x ${MIRROR_PASSWORD}"}`])).toHaveLength(1);
    expect(leaks(output)).toEqual([]);

    const parsed = output.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${line.slice(0, 200)}`);
      }
    });
    // Our activities' lines, and the SDK's lines about the tenant's workflow, name the tenant.
    const aboutTenant = parsed.filter((l) => typeof l.activity === 'string' || (typeof l.workflowId === 'string' && l.workflowId === workflowIdFor(TENANT)));
    expect(aboutTenant.length).toBeGreaterThan(5);
    expect(aboutTenant.filter((l) => l.tenantId !== TENANT)).toEqual([]);
    expect(parsed.some((l) => l.source === 'temporal' && l.tenantId === TENANT)).toBe(true);
    // Where there is a table, it is named.
    const populated = parsed.filter((l) => l.msg === 'table populated');
    expect(populated.length).toBe(3);
    expect(populated.every((l) => l.table === 'orders' && l.tenantId === TENANT)).toBe(true);
    // The AuthFailed failure reached the log, without the password (checked above).
    expect(output.some((l) => l.includes('password authentication failed'))).toBe(true);
  });
});

function leaks(lines: string[]): string[] {
  return lines.filter((l) => SECRETS.some((s) => l.includes(s)));
}
