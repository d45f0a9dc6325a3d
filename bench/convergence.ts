/**
 * 2. Incremental convergence and 3. lag under load, tenant-mirror against native logical replication, plus the
 * Temporal cost per 1,000 changes under load.
 *
 * The two never run at the same time (they would share the 2 cores): while tenant-mirror is measured the
 * subscription is disabled, while the subscription is measured the tenant is paused. Each side catches up
 * (untimed) before its own round, so each is timed from the commit of its own changes on a live system.
 */
import type { Client as PgClient } from 'pg';
import { makeChanges, sameSignature, signature, type Signature } from './data';
import { diffCounts, median, percentile, q, readActions, settle, sleep, withPg } from './env';
import type { Ctx } from './context';
import { LR_MAIN, MAIN_SCHEMA, MAIN_TENANT } from './population';
import { historyCount, pauseTenant, resumeTenant } from './tenants';

type Side = 'tenantMirror' | 'logicalReplication';

async function waitSignature(url: string, schema: string, expected: Signature, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await withPg(url, async (c) => {
    for (;;) {
      if (sameSignature(await signature(c, schema), expected)) return;
      if (Date.now() > deadline) throw new Error(`${schema} did not converge within ${timeoutMs} ms`);
      await sleep(50);
    }
  });
}

const sourceSignature = (ctx: Ctx): Promise<Signature> => withPg(ctx.sourceUrl, (c) => signature(c, 'public'));
const lrUrl = (ctx: Ctx): string => ctx.env.mirror.url(LR_MAIN);

/** Makes `side` the only one following the source, caught up with it. */
async function activate(ctx: Ctx, side: Side): Promise<void> {
  if (side === 'tenantMirror') {
    await q(lrUrl(ctx), `ALTER SUBSCRIPTION ${LR_MAIN} DISABLE`);
    await resumeTenant(ctx.env.client, MAIN_TENANT);
    await waitSignature(ctx.mirrorUrl, MAIN_SCHEMA, await sourceSignature(ctx), 10 * 60_000);
  } else {
    await pauseTenant(ctx.env.client, MAIN_TENANT);
    await q(lrUrl(ctx), `ALTER SUBSCRIPTION ${LR_MAIN} ENABLE`);
    await waitSignature(lrUrl(ctx), 'public', await sourceSignature(ctx), 10 * 60_000);
  }
}

export interface IncrementalResult {
  changedRows: number;
  runs: number;
  seconds: Record<Side, number>;
  samples: Record<Side, number[]>;
}

export async function runIncremental(ctx: Ctx): Promise<IncrementalResult> {
  const samples: Record<Side, number[]> = { tenantMirror: [], logicalReplication: [] };
  const changed: number[] = [];
  let round = 0;
  for (let i = 1; i <= ctx.opts.runs; i++) {
    for (const side of ['tenantMirror', 'logicalReplication'] as const) {
      await activate(ctx, side);
      await settle(ctx.env);
      round++;
      const changedRows = await withPg(ctx.sourceUrl, (c) => makeChanges(c, ctx.opts.changes, round, ctx.opts.seed));
      changed.push(changedRows);
      const t = performance.now();
      const expected = await sourceSignature(ctx);
      if (side === 'tenantMirror') await waitSignature(ctx.mirrorUrl, MAIN_SCHEMA, expected, 10 * 60_000);
      else await waitSignature(lrUrl(ctx), 'public', expected, 10 * 60_000);
      samples[side].push((performance.now() - t) / 1000);
      ctx.log(`  ${side} round ${i}: ${changedRows} rows in ${samples[side].at(-1)!.toFixed(2)} s`);
    }
  }
  return {
    changedRows: median(changed),
    runs: ctx.opts.runs,
    seconds: { tenantMirror: median(samples.tenantMirror), logicalReplication: median(samples.logicalReplication) },
    samples,
  };
}

export interface LagFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  probes: number;
  achievedRate: number;
}

export interface LagResult {
  rate: number;
  seconds: number;
  tenantMirror: LagFigures;
  logicalReplication: LagFigures;
  temporalPer1000Changes: { historyEvents: number; billableActions: number; actionsByType: Record<string, number> };
}

/** A seeded generator (mulberry32), so the load is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes `rate` row changes a second for `seconds` in ticks of 100 ms (60% updates of `narrow`, 30% inserts
 * into and 10% deletes from `events`), each tick one transaction that also inserts a probe row. Meanwhile it
 * polls the target's probe table: a probe's lag is the time from its commit to the first poll that sees it.
 */
async function lagUnderLoad(ctx: Ctx, targetUrl: string, probeTable: string, seed: number): Promise<LagFigures & { changes: number }> {
  const random = rng(seed);
  const commits = new Map<number, number>();
  const lags: number[] = [];
  let changes = 0;
  const writer = async (c: PgClient): Promise<void> => {
    const [{ maxNarrow, maxEvents, maxSeq }] = (
      await c.query<{ maxNarrow: string; maxEvents: string; maxSeq: string }>(
        `SELECT (SELECT max(id) FROM narrow)::text AS "maxNarrow", (SELECT max(id) FROM events)::text AS "maxEvents",
                (SELECT coalesce(max(seq), 0) FROM probe)::text AS "maxSeq"`,
      )
    ).rows as [{ maxNarrow: string; maxEvents: string; maxSeq: string }];
    let nextEvent = Number(maxEvents) + 1;
    let seq = Number(maxSeq);
    const inserted: number[] = [];
    const perTick = ctx.opts.rate / 10;
    const start = performance.now();
    const ticks = Math.round(ctx.opts.lagSeconds * 10);
    for (let tick = 0; tick < ticks; tick++) {
      const due = start + tick * 100;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const upd = Math.round(perTick * 0.6);
      const ins = Math.round(perTick * 0.3);
      const del = Math.min(inserted.length, Math.round(perTick - upd - ins));
      const ids = Array.from({ length: upd }, () => 1 + Math.floor(random() * Number(maxNarrow)));
      const gone = inserted.splice(0, del);
      seq++;
      await c.query(
        `BEGIN;
         UPDATE narrow SET rev = rev + 1, val = val + 1 WHERE id = ANY('{${ids.join(',')}}'::bigint[]);
         INSERT INTO events (id, account_id, kind, amount, happened_at, flagged, note)
           SELECT g, g % 50000, 'load', 1.5, clock_timestamp(), false, 'written under load' FROM generate_series(${nextEvent}::bigint, ${nextEvent + ins - 1}::bigint) g;
         ${gone.length ? `DELETE FROM events WHERE id = ANY('{${gone.join(',')}}'::bigint[]);` : ''}
         INSERT INTO probe (seq) VALUES (${seq});
         COMMIT;`,
      );
      commits.set(seq, performance.now());
      for (let k = 0; k < ins; k++) inserted.push(nextEvent + k);
      nextEvent += ins;
      changes += upd + ins + gone.length;
    }
  };

  const startSeq = Number((await q<{ s: string }>(ctx.sourceUrl, 'SELECT coalesce(max(seq), 0)::text AS s FROM probe'))[0]?.s ?? 0);
  let done = false;
  const t0 = performance.now();
  const writing = withPg(ctx.sourceUrl, writer).finally(() => (done = true));
  await withPg(targetUrl, async (c) => {
    let seen = startSeq;
    let hardStop = Infinity;
    for (;;) {
      const { rows } = await c.query<{ s: string }>(`SELECT coalesce(max(seq), 0)::text AS s FROM ${probeTable}`);
      const now = performance.now();
      const max = Number(rows[0]?.s ?? 0);
      for (let s = seen + 1; s <= max; s++) {
        const at = commits.get(s);
        // A probe seen before its commit time was recorded committed in the same instant: lag ~0.
        lags.push(at === undefined ? 0 : Math.max(0, now - at));
      }
      seen = Math.max(seen, max);
      if (done) {
        if (hardStop === Infinity) hardStop = Date.now() + 120_000;
        if (seen >= startSeq + commits.size) break;
        if (Date.now() > hardStop) throw new Error(`${probeTable}: probes still missing 120 s after the load ended`);
      }
      await sleep(50);
    }
  });
  await writing;
  const elapsed = (performance.now() - t0) / 1000;
  return {
    p50Ms: percentile(lags, 50),
    p99Ms: percentile(lags, 99),
    maxMs: Math.max(...lags),
    probes: lags.length,
    achievedRate: changes / Math.max(1e-9, elapsed),
    changes,
  };
}

export async function runLag(ctx: Ctx): Promise<LagResult> {
  await activate(ctx, 'tenantMirror');
  const actionsBefore = await readActions(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace);
  const historyBefore = await historyCount(ctx.env.client, MAIN_TENANT);
  const tm = await lagUnderLoad(ctx, ctx.mirrorUrl, `${MAIN_SCHEMA}.probe`, ctx.opts.seed + 1);
  const actions = diffCounts(await readActions(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace), actionsBefore);
  const historyAfter = await historyCount(ctx.env.client, MAIN_TENANT);
  ctx.log(`  tenant-mirror: p50 ${tm.p50Ms.toFixed(0)} ms, p99 ${tm.p99Ms.toFixed(0)} ms over ${tm.probes} probes`);

  await activate(ctx, 'logicalReplication');
  const lr = await lagUnderLoad(ctx, ctx.env.mirror.url(LR_MAIN), 'public.probe', ctx.opts.seed + 1);
  ctx.log(`  logical replication: p50 ${lr.p50Ms.toFixed(0)} ms, p99 ${lr.p99Ms.toFixed(0)} ms over ${lr.probes} probes`);
  await activate(ctx, 'tenantMirror');

  const per1000 = 1000 / Math.max(1, tm.changes);
  const billable = Object.values(actions).reduce((a, b) => a + b, 0);
  return {
    rate: ctx.opts.rate,
    seconds: ctx.opts.lagSeconds,
    tenantMirror: strip(tm),
    logicalReplication: strip(lr),
    temporalPer1000Changes: {
      historyEvents: (historyAfter.events - historyBefore.events) * per1000,
      billableActions: billable * per1000,
      actionsByType: actions,
    },
  };
}

function strip(f: LagFigures & { changes: number }): LagFigures {
  return { p50Ms: f.p50Ms, p99Ms: f.p99Ms, maxMs: f.maxMs, probes: f.probes, achievedRate: f.achievedRate };
}
