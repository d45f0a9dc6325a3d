/**
 * 1. Initial population: tenant-mirror (real workflow + worker) against a raw COPY pipe, pg_dump | psql and
 * native logical replication's initial sync, each copying the same tables from the same source server into the
 * same mirror server.
 */
import { spawn } from 'node:child_process';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ALL_TABLE_NAMES, createEmpty, sameSignature, signature } from './data';
import { median, q, settle, sleep, withPg } from './env';
import type { Ctx } from './context';
import { activityTimeline, startTenant, terminateTenant, waitPopulated, type ActivitySpan } from './tenants';

export interface PopulationResult {
  rows: number;
  bytes: number;
  runs: number;
  seconds: { tenantMirror: number; copyPipe: number; pgDump: number; logicalReplication: number };
  samples: { tenantMirror: number[]; copyPipe: number[]; pgDump: number[]; logicalReplication: number[] };
  /** The last tenant-mirror run's activities (from its history), to see where the time went. */
  timeline: ActivitySpan[];
}

export const LR_PUBLICATION = 'bench_pub';
export const LR_MAIN = 'lr_main';
export const MAIN_TENANT = 'main';
export const MAIN_SCHEMA = 'main';

async function freshDatabase(ctx: Ctx, name: string): Promise<string> {
  await ctx.env.mirror.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  const url = await ctx.env.mirror.createDatabase(name);
  await withPg(url, (c) => createEmpty(c));
  return url;
}

/** Raw COPY TO STDOUT piped into COPY FROM STDIN, table after table (as the product does). Returns bytes moved. */
async function copyPipe(ctx: Ctx, target: string): Promise<number> {
  let bytes = 0;
  await withPg(ctx.sourceUrl, (src) =>
    withPg(target, async (dst) => {
      for (const t of ALL_TABLE_NAMES) {
        const count = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bytes += chunk.length;
            cb(null, chunk);
          },
        });
        await pipeline(src.query(copyTo(`COPY (SELECT * FROM ${t}) TO STDOUT`)), count, dst.query(copyFrom(`COPY ${t} FROM STDIN`)));
      }
    }),
  );
  return bytes;
}

function pgDumpPipe(ctx: Ctx, database: string): Promise<void> {
  const tables = ALL_TABLE_NAMES.map((t) => `-t public.${t}`).join(' ');
  const cmd =
    `/usr/bin/pg_dump -h 127.0.0.1 -p ${ctx.env.source.port} -U postgres --no-owner --no-privileges ${tables} app` +
    ` | /usr/bin/psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ${ctx.env.mirror.port} -U postgres -d ${database} > /dev/null`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], { env: { ...process.env, PGPASSWORD: 'postgres' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump | psql failed (${code}): ${err.slice(0, 500)}`))));
  });
}

/** CREATE SUBSCRIPTION with copy_data and waits until every table is ready ('r'). */
export async function subscribe(
  ctx: Ctx,
  database: string,
  url: string,
  from: { database: string; publication: string; tables: number } = { database: 'app', publication: LR_PUBLICATION, tables: ALL_TABLE_NAMES.length },
): Promise<void> {
  await q(url, `CREATE SUBSCRIPTION ${database} CONNECTION '${ctx.env.source.url(from.database)}' PUBLICATION ${from.publication} WITH (copy_data = true)`);
  for (;;) {
    const rows = await q<{ ready: string; total: string }>(
      url,
      `SELECT count(*) FILTER (WHERE srsubstate = 'r')::text AS ready, count(*)::text AS total FROM pg_subscription_rel`,
    );
    if (Number(rows[0]?.total) === from.tables && rows[0]?.ready === rows[0]?.total) return;
    await sleep(50);
  }
}

export async function dropSubscription(ctx: Ctx, database: string): Promise<void> {
  await q(ctx.env.mirror.url(database), `DROP SUBSCRIPTION IF EXISTS ${database}`);
  await ctx.env.mirror.sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
}

export async function runPopulation(ctx: Ctx): Promise<PopulationResult> {
  const runs = ctx.opts.runs;
  const samples = { tenantMirror: [] as number[], copyPipe: [] as number[], pgDump: [] as number[], logicalReplication: [] as number[] };
  let bytes = 0;
  await ctx.env.source.sql(`CREATE PUBLICATION ${LR_PUBLICATION} FOR TABLE ${ALL_TABLE_NAMES.join(', ')}`, 'app');

  // The baselines run before tenant-mirror installs its triggers, so pg_dump copies plain tables.
  for (let i = 1; i <= runs; i++) {
    const raw = await freshDatabase(ctx, `raw_${i}`);
    await settle(ctx.env);
    let t = performance.now();
    bytes = await copyPipe(ctx, raw);
    samples.copyPipe.push((performance.now() - t) / 1000);
    await ctx.env.mirror.sql(`DROP DATABASE raw_${i}`);
    ctx.log(`  copy pipe run ${i}: ${samples.copyPipe.at(-1)!.toFixed(2)} s`);

    await ctx.env.mirror.sql(`DROP DATABASE IF EXISTS dump_${i}`);
    await ctx.env.mirror.createDatabase(`dump_${i}`);
    await settle(ctx.env);
    t = performance.now();
    await pgDumpPipe(ctx, `dump_${i}`);
    samples.pgDump.push((performance.now() - t) / 1000);
    await ctx.env.mirror.sql(`DROP DATABASE dump_${i}`);
    ctx.log(`  pg_dump | psql run ${i}: ${samples.pgDump.at(-1)!.toFixed(2)} s`);

    // The last logical-replication run stays subscribed: later measurements compare against it.
    const name = i === runs ? LR_MAIN : `lr_${i}`;
    const lr = await freshDatabase(ctx, name);
    await settle(ctx.env);
    t = performance.now();
    await subscribe(ctx, name, lr);
    samples.logicalReplication.push((performance.now() - t) / 1000);
    if (i !== runs) await dropSubscription(ctx, name);
    ctx.log(`  logical replication run ${i}: ${samples.logicalReplication.at(-1)!.toFixed(2)} s`);
  }
  await q(ctx.env.mirror.url(LR_MAIN), `ALTER SUBSCRIPTION ${LR_MAIN} DISABLE`);

  for (let i = 1; i <= runs; i++) {
    // The last run's tenant stays: it is the tenant the later measurements use.
    const last = i === runs;
    const id = last ? MAIN_TENANT : `pop-${i}`;
    const schema = last ? MAIN_SCHEMA : `pop_${i}`;
    ctx.tenants.set({
      id,
      source: { kind: 'postgres', url: ctx.sourceUrl },
      mirror: { kind: 'postgres', url: ctx.mirrorUrl, schema },
      pollInterval: '1s',
    });
    await settle(ctx.env);
    const t = performance.now();
    await startTenant(ctx.env.client, id, ctx.worker.taskQueue);
    await waitPopulated(ctx.mirrorUrl, schema, ALL_TABLE_NAMES, 30 * 60_000);
    samples.tenantMirror.push((performance.now() - t) / 1000);
    ctx.log(`  tenant-mirror run ${i}: ${samples.tenantMirror.at(-1)!.toFixed(2)} s`);
    if (!last) {
      await terminateTenant(ctx.env.client, id);
      ctx.tenants.delete(id);
      // The terminated run's sync session notices at its next heartbeat (about a second) and stops.
      await sleep(2_000);
      await ctx.env.mirror.sql(`DROP SCHEMA ${schema} CASCADE`, 'partner');
    }
  }
  const timeline = await activityTimeline(ctx.env.client, MAIN_TENANT);
  for (const a of timeline.filter((x) => x.activity !== 'syncSession')) {
    ctx.log(`    ${a.activity} at +${a.scheduledAtMs.toFixed(0)} ms: queued ${a.queuedMs.toFixed(0)} ms, ran ${a.runMs.toFixed(0)} ms`);
  }
  const [src, dst] = await Promise.all([
    withPg(ctx.sourceUrl, (c) => signature(c, 'public')),
    withPg(ctx.mirrorUrl, (c) => signature(c, MAIN_SCHEMA)),
  ]);
  if (!sameSignature(src, dst)) throw new Error(`populated mirror differs from the source: ${JSON.stringify({ src, dst })}`);

  return {
    rows: ctx.rows,
    bytes,
    runs,
    seconds: {
      tenantMirror: median(samples.tenantMirror),
      copyPipe: median(samples.copyPipe),
      pgDump: median(samples.pgDump),
      logicalReplication: median(samples.logicalReplication),
    },
    samples,
    timeline,
  };
}
