/**
 * 1b. One large table: what splitting a population into key ranges buys. The same table (5M rows in a full run)
 * is copied by a raw COPY pipe (one stream), by logical replication's initial sync (one table: one sync worker),
 * and by tenant-mirror in one stream and split over `populateStreams` connections (the default, 2).
 */
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { median, q, settle, sleep, withPg } from './env';
import type { Ctx } from './context';
import { subscribe } from './population';
import { startTenant, terminateTenant, waitPopulated } from './tenants';

export interface LargeTableResult {
  rows: number;
  bytes: number;
  runs: number;
  /** The tenant-mirror run split into this many streams (`populateStreams`). */
  streams: number;
  seconds: { oneStream: number; split: number; copyPipe: number; logicalReplication: number };
  samples: { oneStream: number[]; split: number[]; copyPipe: number[]; logicalReplication: number[] };
}

const SOURCE_DB = 'large';
const PUBLICATION = 'large_pub';
const TABLE = 'ledger';
const SPLIT_STREAMS = 2;
const CREATE = `CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, account integer NOT NULL, amount numeric(12,2) NOT NULL, status text NOT NULL, booked timestamptz NOT NULL, memo text)`;

async function generate(ctx: Ctx, rows: number): Promise<void> {
  await ctx.env.source.sql(`DROP DATABASE IF EXISTS ${SOURCE_DB} WITH (FORCE)`);
  const url = await ctx.env.source.createDatabase(SOURCE_DB);
  await withPg(url, async (c) => {
    await c.query(CREATE);
    // Inserted in key order, as an append-mostly table grows; ANALYZE gives the planner estimate a split is chosen by.
    await c.query(
      `INSERT INTO ${TABLE}
       SELECT g, g % 50000, (g % 100000) / 100.0, (ARRAY['open', 'paid', 'void', 'refunded'])[g % 4 + 1],
              timestamptz '2025-01-01' + g * interval '1 second', CASE WHEN g % 5 = 0 THEN NULL ELSE 'memo ' || g END
       FROM generate_series(1, ${rows}) g`,
    );
    await c.query(`ANALYZE ${TABLE}`);
    await c.query(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE ${TABLE}`);
  });
}

async function emptyTarget(ctx: Ctx, name: string): Promise<string> {
  await ctx.env.mirror.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  const url = await ctx.env.mirror.createDatabase(name);
  await q(url, CREATE);
  return url;
}

/** COPY TO piped into COPY FROM: one stream, the ceiling of a single-connection copy. Returns bytes moved. */
async function copyPipe(ctx: Ctx, target: string): Promise<number> {
  let bytes = 0;
  await withPg(ctx.env.source.url(SOURCE_DB), (src) =>
    withPg(target, async (dst) => {
      const out = src.query(copyTo(`COPY ${TABLE} TO STDOUT`));
      out.on('data', (chunk: Buffer) => (bytes += chunk.length));
      await pipeline(out, dst.query(copyFrom(`COPY ${TABLE} FROM STDIN`)));
    }),
  );
  return bytes;
}

async function tenantMirror(ctx: Ctx, id: string, streams: number): Promise<number> {
  const schema = id.replaceAll('-', '_');
  ctx.tenants.set({
    id,
    source: { kind: 'postgres', url: ctx.env.source.url(SOURCE_DB) },
    mirror: { kind: 'postgres', url: ctx.mirrorUrl, schema },
    pollInterval: '1s',
    populateStreams: streams,
    // The quick run's table is small: it is split all the same, so the path is exercised.
    ...(ctx.opts.quick ? { splitRows: 1_000 } : {}),
  });
  await settle(ctx.env);
  const t = performance.now();
  await startTenant(ctx.env.client, id, ctx.worker.taskQueue);
  await waitPopulated(ctx.mirrorUrl, schema, [TABLE], 30 * 60_000);
  const seconds = (performance.now() - t) / 1000;
  const [n] = await q<{ n: string }>(ctx.mirrorUrl, `SELECT count(*)::text AS n FROM ${schema}.${TABLE}`);
  await terminateTenant(ctx.env.client, id);
  ctx.tenants.delete(id);
  await sleep(2_000);
  await ctx.env.mirror.sql(`DROP SCHEMA ${schema} CASCADE`, 'partner');
  if (Number(n?.n) !== largeRows(ctx)) throw new Error(`${id} mirrored ${n?.n} rows of ${largeRows(ctx)}`);
  return seconds;
}

function largeRows(ctx: Ctx): number {
  return ctx.opts.quick ? 30_000 : 5_000_000;
}

export async function runLargeTable(ctx: Ctx): Promise<LargeTableResult> {
  const rows = largeRows(ctx);
  const t0 = performance.now();
  await generate(ctx, rows);
  ctx.log(`  ${rows} rows in ${TABLE} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const samples = { oneStream: [] as number[], split: [] as number[], copyPipe: [] as number[], logicalReplication: [] as number[] };
  let bytes = 0;
  for (let i = 1; i <= ctx.opts.runs; i++) {
    const raw = await emptyTarget(ctx, 'large_raw');
    await settle(ctx.env);
    let t = performance.now();
    bytes = await copyPipe(ctx, raw);
    samples.copyPipe.push((performance.now() - t) / 1000);
    await ctx.env.mirror.sql('DROP DATABASE large_raw WITH (FORCE)');

    const lr = await emptyTarget(ctx, 'large_lr');
    await settle(ctx.env);
    t = performance.now();
    await subscribe(ctx, 'large_lr', lr, { database: SOURCE_DB, publication: PUBLICATION, tables: 1 });
    samples.logicalReplication.push((performance.now() - t) / 1000);
    await q(lr, 'DROP SUBSCRIPTION large_lr');
    await ctx.env.mirror.sql('DROP DATABASE large_lr WITH (FORCE)');

    samples.oneStream.push(await tenantMirror(ctx, `large-one-${i}`, 1));
    samples.split.push(await tenantMirror(ctx, `large-split-${i}`, SPLIT_STREAMS));
    ctx.log(
      `  run ${i}: copy pipe ${samples.copyPipe.at(-1)!.toFixed(2)} s, logical replication ${samples.logicalReplication.at(-1)!.toFixed(2)} s, ` +
        `tenant-mirror one stream ${samples.oneStream.at(-1)!.toFixed(2)} s, ${SPLIT_STREAMS} streams ${samples.split.at(-1)!.toFixed(2)} s`,
    );
  }
  await ctx.env.source.sql(`DROP DATABASE ${SOURCE_DB} WITH (FORCE)`);
  return {
    rows,
    bytes,
    runs: ctx.opts.runs,
    streams: SPLIT_STREAMS,
    seconds: {
      oneStream: median(samples.oneStream),
      split: median(samples.split),
      copyPipe: median(samples.copyPipe),
      logicalReplication: median(samples.logicalReplication),
    },
    samples,
  };
}
