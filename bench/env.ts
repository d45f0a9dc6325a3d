/**
 * The benchmark's servers: a Temporal dev server (started here rather than through startDevServer so its
 * metrics port is known: the server's own `action` counter is how billable actions are counted), a source
 * PostgreSQL with wal_level=logical (so native logical replication runs beside tenant-mirror) and a mirror
 * PostgreSQL. Everything lives under .data/bench and is thrown away at the end.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client as PgClient, type QueryResultRow } from 'pg';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { EmbeddedPg } from '../dev/embedded-postgres';
import { PROJECT_ROOT } from '../dev/paths';
import { startDevServer } from '../dev/temporal/dev-server';

/** BENCH_DATA_DIR lets the quick-mode test run beside a full benchmark without sharing servers' directories. */
export const BENCH_DIR = process.env.BENCH_DATA_DIR ?? join(PROJECT_ROOT, '.data', 'bench');

export interface BenchEnv {
  source: EmbeddedPg;
  mirror: EmbeddedPg;
  temporal: { address: string; namespace: string; metricsUrl: string };
  client: Client;
  bundlePath: string;
  stop(): Promise<void>;
}

const PG_SETTINGS = {
  max_connections: '1000',
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  synchronous_commit: 'off',
  // BENCH_STATEMENTS=1: both servers record statement figures (see statementProfile), to find where a step's time goes.
  ...(process.env.BENCH_STATEMENTS === '1' ? { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all', 'pg_stat_statements.track_planning': 'on' } : {}),
};

/** The statements that took the most server time since the last reset, as printable lines (BENCH_STATEMENTS=1 only). */
export async function statementProfile(url: string, top = 12): Promise<string[]> {
  if (process.env.BENCH_STATEMENTS !== '1') return [];
  await q(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const rows = await q<{ ms: string; plan: string; calls: string; query: string }>(
    url,
    `SELECT round(sum(total_exec_time))::text AS ms, round(sum(total_plan_time))::text AS plan, sum(calls)::text AS calls,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 150) AS query
       FROM pg_stat_statements GROUP BY query ORDER BY sum(total_exec_time + total_plan_time) DESC LIMIT ${top}`,
  );
  return rows.map((r) => `${r.ms.padStart(8)} ms + plan ${r.plan.padStart(6)} ms ${r.calls.padStart(8)} calls  ${r.query}`);
}

export async function resetStatements(url: string): Promise<void> {
  if (process.env.BENCH_STATEMENTS !== '1') return;
  await q(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await q(url, 'SELECT pg_stat_statements_reset()');
}

export async function startEnv(log: (line: string) => void): Promise<BenchEnv> {
  mkdirSync(BENCH_DIR, { recursive: true });
  const [source, mirror, temporal, bundle] = await Promise.all([
    EmbeddedPg.start({
      dir: join(BENCH_DIR, 'source'),
      settings: { ...PG_SETTINGS, wal_level: 'logical', max_replication_slots: '20', max_wal_senders: '20' },
    }),
    EmbeddedPg.start({ dir: join(BENCH_DIR, 'mirror'), settings: { ...PG_SETTINGS, max_logical_replication_workers: '8' } }),
    startDevServer(),
    bundleWorkflowCode({ workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts'), logger: quietLogger() }),
  ]);
  const bundlePath = join(BENCH_DIR, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  log(`servers: source :${source.port} (wal_level=logical), mirror :${mirror.port}, temporal ${temporal.address}`);
  return {
    source,
    mirror,
    temporal: { address: temporal.address, namespace: temporal.namespace, metricsUrl: temporal.metricsUrl },
    client,
    bundlePath,
    async stop() {
      await connection.close().catch(() => undefined);
      await Promise.allSettled([source.stop(), mirror.stop(), temporal.stop()]);
    },
  };
}


/** The Temporal server's billable-action counters for a namespace, by action type. */
export async function readActions(metricsUrl: string, namespace: string): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('action{')) continue;
    const ns = /namespace="([^"]*)"/.exec(line)?.[1];
    const type = /action_type="([^"]*)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (ns !== namespace || !type || !Number.isFinite(value)) continue;
    out[type] = (out[type] ?? 0) + value;
  }
  return out;
}

/**
 * Calls the Temporal frontend served in the namespace, by operation (the server's `service_requests` counter).
 * Long polls count once per call, whatever they waited.
 */
export async function readFrontendCalls(metricsUrl: string, namespace: string): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('service_requests{') || !line.includes('service_name="frontend"')) continue;
    const ns = /namespace="([^"]*)"/.exec(line)?.[1];
    const op = /operation="([^"]*)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (ns !== namespace || !op || !Number.isFinite(value)) continue;
    out[op] = (out[op] ?? 0) + value;
  }
  return out;
}

export function diffCounts(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export async function withPg<T>(url: string, fn: (c: PgClient) => Promise<T>): Promise<T> {
  const c = new PgClient({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function q<T extends QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  return withPg(url, async (c) => (await c.query<T>(text, params)).rows);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function quietLogger() {
  const noop = (): void => undefined;
  return { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
}

/**
 * Lets both servers become quiet before a timed run: a checkpoint, then no autovacuum worker busy (a table just
 * loaded by the previous run is vacuumed and analysed right after, and would slow the next run down).
 */
export async function settle(env: BenchEnv, maxMs = 60_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  for (const server of [env.source, env.mirror]) {
    const url = server.url();
    await q(url, 'CHECKPOINT');
    for (;;) {
      const rows = await q<{ n: string }>(url, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`);
      if (Number(rows[0]?.n) === 0 || Date.now() > deadline) break;
      await sleep(250);
    }
  }
}
