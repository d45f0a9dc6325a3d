/**
 * 6. Source overhead: pgbench write throughput on three identical tables, each in a database of its own: one
 * untracked, one with trigger tracking and one with logical decoding (both installed by the product's own
 * enableTracking), runs alternating, median of `runs`. The mix per transaction: 60% single-row updates, 30%
 * inserts, 10% deletes. Measured twice: on the benchmark's source server (fsync and synchronous_commit off: every
 * transaction is pure CPU, the worst case for tracking) and on a server with durable commits (fsync and
 * synchronous_commit on, as production runs).
 *
 * Every tracked run has a snapshot taken every poll interval (1 s) meanwhile, as the sync session would: for
 * logical decoding that is where ingestion runs (walsender, side-table inserts, the worker's parsing), and on this
 * 2-vCPU machine it competes with pgbench for the same cores, so its cost is in the figure. Before each logical run
 * the slot is caught up, untimed: WAL the other runs wrote meanwhile is not the logical run's work.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedPg } from '../dev/embedded-postgres';
import { PgChangeSource } from '../src/postgres/source';
import { BENCH_DIR, median, withPg } from './env';
import type { Ctx } from './context';

type Mode = 'plain' | 'trigger' | 'logical';
const MODES: Mode[] = ['plain', 'trigger', 'logical'];

export interface OverheadRow {
  /** Which server: the benchmark's (fsync off) or one with durable commits. */
  commits: 'fast' | 'durable';
  settings: Record<string, string>;
  tps: Record<Mode, number>;
  /** Share of the untracked throughput lost, per tracking mode. */
  cost: { trigger: number; logical: number };
  samples: Record<Mode, number[]>;
  /**
   * Ingestion during the logical runs: how long a snapshot (its ingestion) took, side entries written per second,
   * and how far behind the slot was when a run ended (WAL not yet ingested: work the figure does not include).
   */
  ingestion: { cycles: number; p50Ms: number; maxMs: number; entriesPerSecond: number; behindAtEndMB: number };
}

export interface OverheadResult {
  /** The fast row's untracked and trigger figures, as earlier results files have them. */
  tpsPlain: number;
  tpsTracked: number;
  cost: number;
  samples: { plain: number[]; tracked: number[] };
  rows?: OverheadRow[];
}

const ROWS = 100_000;
const POLL_MS = 1_000;

function scripts(table: string): string[] {
  const files: [string, string, number][] = [
    ['upd', `\\set id random(1, ${ROWS})\nUPDATE ${table} SET val = val + 1, rev = rev + 1 WHERE id = :id;\n`, 6],
    ['ins', `\\set id random(${ROWS + 1}, 2000000000)\nINSERT INTO ${table} (id, val, note) VALUES (:id, 1, 'pgbench insert') ON CONFLICT DO NOTHING;\n`, 3],
    ['del', `\\set id random(1, ${ROWS})\nDELETE FROM ${table} WHERE id = :id;\n`, 1],
  ];
  return files.map(([name, text, weight]) => {
    const path = join(BENCH_DIR, `pgbench-${table}-${name}.sql`);
    writeFileSync(path, text);
    return `${path}@${weight}`;
  });
}

function pgbench(server: EmbeddedPg, database: string, files: string[], seconds: number): Promise<number> {
  const args = ['-n', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', '-c', '4', '-j', '2', '-M', 'prepared', '-T', String(seconds)];
  for (const f of files) args.push('-f', f);
  args.push(database);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/pgbench', args, { env: { ...process.env, PGPASSWORD: 'postgres' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
      if (code !== 0 || !tps) reject(new Error(`pgbench failed (${code}): ${out.slice(-500)}`));
      else resolve(Number(tps));
    });
  });
}

/** Snapshots at the poll interval while `run` lasts, as a sync session would take them; their durations. */
async function polling<T>(source: PgChangeSource, run: Promise<T>): Promise<{ result: T; cycles: number[] }> {
  let done = false;
  const cycles: number[] = [];
  let failure: unknown = null;
  const loop = (async () => {
    while (!done) {
      const started = performance.now();
      const snap = await source.snapshot();
      await snap.close();
      cycles.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, Math.max(0, POLL_MS - (performance.now() - started))));
    }
  })().catch((err: unknown) => {
    failure = err;
  });
  try {
    const result = await run;
    done = true;
    await loop;
    if (failure) throw failure;
    return { result, cycles };
  } finally {
    done = true;
    await loop;
  }
}

/** Side entries recorded so far, and how many bytes of WAL the slot is behind the server. */
async function slotFigures(server: EmbeddedPg, database: string): Promise<{ entries: number; behind: number }> {
  return withPg(server.url(database), async (c) => {
    const side = (await c.query<{ side: string }>(`SELECT side_table AS side FROM tenant_mirror_ct.tracked`)).rows[0]?.side;
    const entries = side ? (await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM tenant_mirror_ct."${side.replace(/"/g, '""')}"`)).rows[0]?.n : '0';
    const behind = await c.query<{ b: string | null }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS b FROM pg_replication_slots WHERE database = current_database()`,
    );
    return { entries: Number(entries ?? 0), behind: Number(behind.rows[0]?.b ?? 0) };
  });
}

async function measure(ctx: Ctx, server: EmbeddedPg, commits: OverheadRow['commits'], settings: Record<string, string>): Promise<OverheadRow> {
  const sources = new Map<Mode, PgChangeSource>();
  const db = (mode: Mode): string => `ovh_${mode}`;
  try {
    for (const mode of MODES) {
      await server.sql(`DROP DATABASE IF EXISTS ${db(mode)} WITH (FORCE)`);
      const url = await server.createDatabase(db(mode));
      await server.sql(
        `CREATE TABLE ob (id bigint PRIMARY KEY, val integer NOT NULL, note text, rev integer NOT NULL DEFAULT 0);
         INSERT INTO ob SELECT g, g % 1000, 'row ' || g, 0 FROM generate_series(1, ${ROWS}) g;`,
        db(mode),
      );
      await server.sql('VACUUM ANALYZE ob', db(mode));
      if (mode === 'plain') continue;
      const source = new PgChangeSource({ url, tenant: `bench-overhead-${mode}`, tracking: mode });
      sources.set(mode, source);
      const table = (await source.listTables((n) => n === 'ob')).tables[0];
      if (!table) throw new Error('ob not listed');
      await source.enableTracking(table, 7 * 24 * 3600 * 1000);
    }
    const samples: Record<Mode, number[]> = { plain: [], trigger: [], logical: [] };
    const cycles: number[] = [];
    const behind: number[] = [];
    let entries = 0;
    let loggedSeconds = 0;
    const files = scripts('ob');
    for (let i = 0; i < ctx.opts.runs; i++) {
      for (const mode of MODES) {
        const source = sources.get(mode);
        if (mode === 'logical' && source) await (await source.snapshot()).close();
        const before = mode === 'logical' ? (await slotFigures(server, db(mode))).entries : 0;
        const run = pgbench(server, db(mode), files, ctx.opts.overheadSeconds);
        const { result, cycles: took } = source ? await polling(source, run) : { result: await run, cycles: [] };
        samples[mode].push(result);
        if (mode === 'logical') {
          cycles.push(...took);
          const after = await slotFigures(server, db(mode));
          entries += after.entries - before;
          behind.push(after.behind);
          loggedSeconds += ctx.opts.overheadSeconds;
        }
      }
      ctx.log(`  ${commits} run ${i + 1}: ${MODES.map((m) => `${samples[m].at(-1)!.toFixed(0)} tps ${m}`).join(', ')}`);
    }
    const tps = { plain: median(samples.plain), trigger: median(samples.trigger), logical: median(samples.logical) };
    return {
      commits,
      settings,
      tps,
      cost: { trigger: 1 - tps.trigger / tps.plain, logical: 1 - tps.logical / tps.plain },
      samples,
      ingestion: { cycles: cycles.length, p50Ms: median(cycles), maxMs: Math.max(0, ...cycles), entriesPerSecond: loggedSeconds ? entries / loggedSeconds : 0, behindAtEndMB: median(behind) / 1024 / 1024 },
    };
  } finally {
    for (const s of sources.values()) {
      await s.untrack(() => true, { removeUnused: true }).catch(() => undefined);
      await s.close();
    }
    for (const mode of MODES) await server.sql(`DROP DATABASE IF EXISTS ${db(mode)} WITH (FORCE)`).catch(() => undefined);
  }
}

/** The benchmark source's settings that matter here (bench/env.ts), and the durable server's. */
const FAST = { fsync: 'off', synchronous_commit: 'off' };
const DURABLE = { fsync: 'on', synchronous_commit: 'on' };

export async function runOverhead(ctx: Ctx): Promise<OverheadResult> {
  const fast = await measure(ctx, ctx.env.source, 'fast', FAST);
  // A server of its own: fsync given on a server's command line cannot be changed by ALTER SYSTEM.
  const durableServer = await EmbeddedPg.start({
    dir: join(BENCH_DIR, 'durable'),
    settings: { ...DURABLE, shared_buffers: '256MB', max_wal_size: '4GB', wal_level: 'logical', max_replication_slots: '10', max_wal_senders: '10' },
  });
  let durable: OverheadRow;
  try {
    durable = await measure(ctx, durableServer, 'durable', DURABLE);
  } finally {
    await durableServer.stop();
  }
  return {
    tpsPlain: fast.tps.plain,
    tpsTracked: fast.tps.trigger,
    cost: fast.cost.trigger,
    samples: { plain: fast.samples.plain, tracked: fast.samples.trigger },
    rows: [fast, durable],
  };
}
