/**
 * 7. Many tenants on one worker process: each tenant its own source schema (tables `items` and `probe`, selected
 * with include `tNNN.*`) in one source database, and its own mirror schema. Light steady writes on all of them
 * (each tenant: one transaction a second updating two rows and inserting a probe); p99 lag over every probe,
 * the worker's CPU and RSS, and the connections the product holds per tenant on each server.
 */
import type { Client as PgClient } from 'pg';
import { mirrorRelation } from '../src/postgres/mirror-sql';
import { percentile, q, resetStatements, sleep, statementProfile, withPg } from './env';
import type { Ctx } from './context';
import { procCpuSeconds, procStatus, startTenant, startWorkerProcess, terminateTenant, waitPopulated } from './tenants';

export interface ManyResult {
  tenants: number;
  seconds: number;
  startupSeconds: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  probes: number;
  workerCpuPercent: number;
  workerRssMB: number;
  workerPeakRssMB: number;
  connectionsPerTenant: { source: number; mirror: number };
}

const pad = (i: number): string => String(i).padStart(3, '0');

export async function runMany(ctx: Ctx): Promise<ManyResult> {
  const n = ctx.opts.tenants;
  const srcUrl = await ctx.env.source.createDatabase('many');
  const dstUrl = await ctx.env.mirror.createDatabase('many_mirror');
  const ddl: string[] = [];
  for (let i = 1; i <= n; i++) {
    const s = `t${pad(i)}`;
    ddl.push(`CREATE SCHEMA ${s};
      CREATE TABLE ${s}.items (id bigint PRIMARY KEY, val integer NOT NULL, rev integer NOT NULL DEFAULT 0);
      INSERT INTO ${s}.items SELECT g, g, 0 FROM generate_series(1, 1000) g;
      CREATE TABLE ${s}.probe (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp());`);
  }
  await ctx.env.source.sql(ddl.join('\n'), 'many');
  for (let i = 1; i <= n; i++) {
    ctx.tenants.set({
      id: `many-${pad(i)}`,
      source: { kind: 'postgres', url: srcUrl },
      mirror: { kind: 'postgres', url: dstUrl, schema: `m${pad(i)}` },
      tables: { include: [`t${pad(i)}.*`], exclude: [] },
      pollInterval: '1s',
    });
  }
  // Each tenant's sync session holds an activity slot for as long as it runs: room for all of them, and for populations.
  const worker = await startWorkerProcess(ctx.env, ctx.tenants, 'bench-many', 'worker-many', { maxActivities: Math.max(200, n + 50) });
  try {
    const t0 = performance.now();
    for (let i = 1; i <= n; i++) await startTenant(ctx.env.client, `many-${pad(i)}`, worker.taskQueue);
    for (let i = 1; i <= n; i++) await waitPopulated(dstUrl, `m${pad(i)}`, [`t${pad(i)}.items`, `t${pad(i)}.probe`], 20 * 60_000, 250);
    const startupSeconds = (performance.now() - t0) / 1000;
    ctx.log(`  ${n} tenants populated in ${startupSeconds.toFixed(1)} s`);
    await sleep(3_000);

    const commits = new Map<string, number>();
    const lags: number[] = [];
    let writing = true;
    const seconds = ctx.opts.manySeconds;
    const writers = Array.from({ length: 4 }, (_, w) =>
      withPg(srcUrl, async (c: PgClient) => {
        const mine = Array.from({ length: n }, (_, k) => k + 1).filter((k) => k % 4 === w);
        const start = performance.now();
        for (let sec = 0; sec < seconds; sec++) {
          for (const [j, k] of mine.entries()) {
            // Spread each writer's tenants over the second.
            const due = start + sec * 1000 + (j * 1000) / Math.max(1, mine.length);
            const wait = due - performance.now();
            if (wait > 0) await sleep(wait);
            const s = `t${pad(k)}`;
            const seq = sec + 1;
            const a = 1 + ((sec * 7 + k) % 1000);
            await c.query(`BEGIN; UPDATE ${s}.items SET rev = rev + 1, val = val + 1 WHERE id IN (${a}, ${1 + ((a + 500) % 1000)});
                           INSERT INTO ${s}.probe (seq) VALUES (${seq}); COMMIT;`);
            commits.set(`${k}:${seq}`, performance.now());
          }
        }
      }),
    );
    const allWritten = Promise.all(writers).finally(() => (writing = false));

    await resetStatements(srcUrl);
    await resetStatements(dstUrl);
    const cpu0 = procCpuSeconds(worker.pid);
    const w0 = performance.now();
    const rss: number[] = [];
    const conns = { source: 0, mirror: 0 };
    const countConns = async (url: string): Promise<number> =>
      Number((await q<{ n: string }>(url, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'tenant-mirror'`))[0]?.n ?? 0);
    const seen = new Map<number, number>();
    const union = Array.from({ length: n }, (_, k) => {
      const i = k + 1;
      return `SELECT ${i} AS k, coalesce(max(seq), 0)::int AS s FROM "m${pad(i)}"."${mirrorRelation(`t${pad(i)}.probe`)}"`;
    }).join(' UNION ALL ');
    let stopAt = Infinity;
    await withPg(dstUrl, async (c) => {
      let tick = 0;
      for (;;) {
        const { rows } = await c.query<{ k: number; s: number }>(union);
        const now = performance.now();
        for (const r of rows) {
          const before = seen.get(r.k) ?? 0;
          for (let s = before + 1; s <= r.s; s++) {
            const at = commits.get(`${r.k}:${s}`);
            lags.push(at === undefined ? 0 : Math.max(0, now - at));
          }
          seen.set(r.k, Math.max(before, r.s));
        }
        if (tick++ % 8 === 0) {
          rss.push(procStatus(worker.pid).rssBytes);
          conns.source = Math.max(conns.source, await countConns(ctx.env.source.url('many')));
          conns.mirror = Math.max(conns.mirror, await countConns(dstUrl));
        }
        if (!writing) {
          if (stopAt === Infinity) stopAt = Date.now() + 120_000;
          if ([...seen.values()].reduce((a, b) => a + b, 0) >= commits.size) break;
          if (Date.now() > stopAt) throw new Error('many tenants: probes still missing 120 s after the load ended');
        }
        await sleep(250);
      }
    });
    await allWritten;
    for (const [side, url] of [['source', srcUrl], ['mirror', dstUrl]] as const) {
      for (const line of await statementProfile(url)) ctx.log(`  ${side} ${line}`);
    }
    const cpu = procCpuSeconds(worker.pid) - cpu0;
    const wall = (performance.now() - w0) / 1000;
    const MB = 1024 * 1024;
    const status = procStatus(worker.pid);
    const result: ManyResult = {
      tenants: n,
      seconds,
      startupSeconds,
      lagP50Ms: percentile(lags, 50),
      lagP99Ms: percentile(lags, 99),
      lagMaxMs: Math.max(...lags),
      probes: lags.length,
      workerCpuPercent: (100 * cpu) / wall,
      workerRssMB: rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length) / MB,
      workerPeakRssMB: status.hwmBytes / MB,
      connectionsPerTenant: { source: conns.source / n, mirror: conns.mirror / n },
    };
    ctx.log(`  p99 lag ${result.lagP99Ms.toFixed(0)} ms, worker CPU ${result.workerCpuPercent.toFixed(0)}%, RSS ${result.workerRssMB.toFixed(0)} MB`);
    for (let i = 1; i <= n; i++) await terminateTenant(ctx.env.client, `many-${pad(i)}`);
    return result;
  } finally {
    await worker.stop();
    for (let i = 1; i <= n; i++) ctx.tenants.delete(`many-${pad(i)}`);
  }
}
