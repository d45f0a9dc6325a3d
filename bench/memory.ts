/**
 * 4. Memory: the worker's peak RSS while it populates one large table, at two sizes (the second 4× the first).
 * Each size gets a fresh worker process, so its VmHWM covers exactly that population.
 */
import { TABLES } from './data';
import { sleep, withPg } from './env';
import type { Ctx } from './context';
import { procStatus, sampleRss, startTenant, startWorkerProcess, terminateTenant, waitPopulated } from './tenants';

export interface MemoryPoint {
  rows: number;
  tableMB: number;
  idleRssMB: number;
  /** Highest RSS sampled (every 50 ms) while the table was being populated. */
  peakRssMB: number;
  /** The process's high-water mark since it started (includes start-up: loading the workflow bundle). */
  hwmMB: number;
  seconds: number;
}

const MB = 1024 * 1024;
// The wide table: the most bytes per row, so the largest table for a given row count.
const WIDE = TABLES.find((t) => t.name === 'wide')!;

export async function runMemory(ctx: Ctx): Promise<MemoryPoint[]> {
  const points: MemoryPoint[] = [];
  for (const rows of ctx.opts.memoryRows) {
    const db = `mem_${rows}`;
    const url = await ctx.env.source.createDatabase(db);
    const tableMB = await withPg(url, async (c) => {
      await c.query(WIDE.ddl);
      await c.query(`INSERT INTO wide SELECT ${WIDE.select.replaceAll(':seed', String(ctx.opts.seed))} FROM generate_series(1::bigint, ${rows}::bigint) g`);
      const r = await c.query<{ b: string }>(`SELECT pg_total_relation_size('wide')::text AS b`);
      return Number(r.rows[0]?.b) / MB;
    });
    const id = `mem-${rows}`;
    const schema = `mem_${rows}`;
    ctx.tenants.set({ id, source: { kind: 'postgres', url }, mirror: { kind: 'postgres', url: ctx.mirrorUrl, schema }, pollInterval: '1s' });
    const worker = await startWorkerProcess(ctx.env, ctx.tenants, `bench-mem-${rows}`, `worker-mem-${rows}`);
    try {
      await sleep(1_000);
      const idle = procStatus(worker.pid).rssBytes;
      const sampler = sampleRss(worker.pid, 50);
      const t = performance.now();
      await startTenant(ctx.env.client, id, worker.taskQueue);
      await waitPopulated(ctx.mirrorUrl, schema, ['wide'], 30 * 60_000);
      const seconds = (performance.now() - t) / 1000;
      const sampled = sampler.stop();
      const hwm = procStatus(worker.pid).hwmBytes;
      points.push({ rows, tableMB, idleRssMB: idle / MB, peakRssMB: sampled / MB, hwmMB: hwm / MB, seconds });
      ctx.log(`  ${rows} rows (${tableMB.toFixed(0)} MB): peak RSS ${(sampled / MB).toFixed(0)} MB (idle ${(idle / MB).toFixed(0)} MB, VmHWM ${(hwm / MB).toFixed(0)} MB)`);
      await terminateTenant(ctx.env.client, id);
    } finally {
      await worker.stop();
      ctx.tenants.delete(id);
      await ctx.env.mirror.sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`, 'partner');
      await ctx.env.source.sql(`DROP DATABASE ${db} WITH (FORCE)`);
    }
  }
  return points;
}
