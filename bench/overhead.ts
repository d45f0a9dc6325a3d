/**
 * 6. Source overhead: pgbench write throughput on two identical tables, one with tenant-mirror's change
 * tracking (installed by the product's own enableTracking) and one without, runs alternating. The mix per
 * transaction: 60% single-row updates, 30% inserts, 10% deletes.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgChangeSource } from '../src/postgres/source';
import { BENCH_DIR, median } from './env';
import type { Ctx } from './context';

export interface OverheadResult {
  tpsPlain: number;
  tpsTracked: number;
  /** Share of throughput lost to tracking. */
  cost: number;
  samples: { plain: number[]; tracked: number[] };
}

const ROWS = 100_000;

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

function pgbench(ctx: Ctx, files: string[], seconds: number): Promise<number> {
  const args = ['-n', '-h', '127.0.0.1', '-p', String(ctx.env.source.port), '-U', 'postgres', '-c', '4', '-j', '2', '-M', 'prepared', '-T', String(seconds)];
  for (const f of files) args.push('-f', f);
  args.push('ovh');
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

export async function runOverhead(ctx: Ctx): Promise<OverheadResult> {
  const url = await ctx.env.source.createDatabase('ovh');
  for (const t of ['ob_plain', 'ob_tracked']) {
    await ctx.env.source.sql(
      `CREATE TABLE ${t} (id bigint PRIMARY KEY, val integer NOT NULL, note text, rev integer NOT NULL DEFAULT 0);
       INSERT INTO ${t} SELECT g, g % 1000, 'row ' || g, 0 FROM generate_series(1, ${ROWS}) g;`,
      'ovh',
    );
    await ctx.env.source.sql(`VACUUM ANALYZE ${t}`, 'ovh');
  }
  const source = new PgChangeSource({ url, tenant: 'bench-overhead' });
  try {
    const table = (await source.listTables((n) => n === 'ob_tracked')).tables[0];
    if (!table) throw new Error('ob_tracked not listed');
    await source.enableTracking(table, 7 * 24 * 3600 * 1000);
  } finally {
    await source.close();
  }
  const samples = { plain: [] as number[], tracked: [] as number[] };
  const plain = scripts('ob_plain');
  const tracked = scripts('ob_tracked');
  for (let i = 0; i < ctx.opts.runs; i++) {
    samples.plain.push(await pgbench(ctx, plain, ctx.opts.overheadSeconds));
    samples.tracked.push(await pgbench(ctx, tracked, ctx.opts.overheadSeconds));
    ctx.log(`  run ${i + 1}: ${samples.plain.at(-1)!.toFixed(0)} tps plain, ${samples.tracked.at(-1)!.toFixed(0)} tps tracked`);
  }
  await ctx.env.source.sql('DROP DATABASE ovh WITH (FORCE)');
  const tpsPlain = median(samples.plain);
  const tpsTracked = median(samples.tracked);
  return { tpsPlain, tpsTracked, cost: 1 - tpsTracked / tpsPlain, samples };
}
