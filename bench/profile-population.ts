/**
 * Where population time goes, table by table, without Temporal: the source read alone (with and without the
 * key order the product asks for), the product's adapters alone (snapshot rows → copyIntoShadow → swapInShadow),
 * and the raw COPY pipe; then the same for one round of changes (the source's net-change query alone, and
 * snapshot changes → applyChanges). `npx tsx bench/profile-population.ts [--rows N] [--changes N]` (own servers
 * under .data/bench-profile).
 */
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { EmbeddedPg } from '../dev/embedded-postgres';
import { PgChangeSource } from '../src/postgres/source';
import { changesSql, rowsSql } from '../src/postgres/snapshot';
import { PgMirror } from '../src/postgres/mirror';
import * as mirrorSql from '../src/postgres/mirror-sql';
import { PROJECT_ROOT } from '../dev/paths';
import { createEmpty, generate, makeChanges, TABLES } from './data';
import { readTrackingState } from '../src/postgres/tracking';
import { withPg } from './env';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, changes: { type: 'string', default: '100000' } } });
  const dir = join(PROJECT_ROOT, '.data', 'bench-profile');
  const settings = { max_connections: '200', shared_buffers: '256MB', max_wal_size: '4GB', synchronous_commit: 'off' };
  const [src, dst] = await Promise.all([
    EmbeddedPg.start({ dir: join(dir, 'source'), settings }),
    EmbeddedPg.start({ dir: join(dir, 'mirror'), settings }),
  ]);
  try {
    const srcUrl = await src.createDatabase('app');
    const dstUrl = await dst.createDatabase('partner');
    await withPg(srcUrl, (c) => generate(c, Number(values.rows), 42));
    const source = new PgChangeSource({ url: srcUrl, tenant: 'profile' });
    const mirror = new PgMirror({ url: dstUrl, schema: 'm', tenant: 'profile' });
    await mirror.ensureState();
    const listed = await source.listTables((n) => TABLES.some((t) => t.name === n));
    const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t = performance.now();
      await fn();
      return (performance.now() - t) / 1000;
    };
    const totals: Record<string, number> = {};
    const add = (k: string, v: number): void => {
      totals[k] = (totals[k] ?? 0) + v;
    };
    await withPg(dstUrl, async (c) => {
      await c.query('CREATE SCHEMA raw');
      await c.query('SET search_path = raw');
      await createEmpty(c);
    });
    for (const schema of listed.tables) {
      const name = schema.name;
      const readOrdered = await withPg(srcUrl, (c) => time(() => pipeline(c.query(copyTo(rowsSql(schema, null))), sink())));
      const readBinary = await withPg(srcUrl, (c) => time(() => pipeline(c.query(copyTo(rowsSql(schema, null, 'pg-binary'))), sink())));
      const readPlain = await withPg(srcUrl, (c) => time(() => pipeline(c.query(copyTo(`COPY ${name} TO STDOUT`)), sink())));
      const raw = await withPg(srcUrl, (s) =>
        withPg(dstUrl, (d) => time(() => pipeline(s.query(copyTo(`COPY (SELECT * FROM ${name}) TO STDOUT`)), d.query(copyFrom(`COPY raw.${name} FROM STDIN`))))),
      );
      let copy = 0;
      let swap = 0;
      const format = mirror.rowFormats(schema)[0] ?? 'text';
      const product = await time(async () => {
        await mirror.applySchema(schema);
        const snap = await source.snapshot();
        try {
          const fence = await mirror.takeFence(`populate:${schema.name}`, 'profile');
          copy = await time(() =>
            // The format the population activity picks: binary COPY where both sides can.
            mirror.copyIntoShadow(schema, snap.rows(schema, undefined, format), { resume: false, version: snap.version, fence, format, chunkBytes: 32 * 1024 * 1024, onChunk: () => undefined }),
          );
          swap = await time(() => mirror.swapInShadow(schema, snap.version, snap.fingerprint, fence));
        } finally {
          await snap.close();
        }
      });
      const row = { readOrdered, readBinary, readPlain, raw, product, copy, swap };
      for (const [k, v] of Object.entries(row)) add(k, v);
      process.stdout.write(`${name.padEnd(8)} ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join('  ')}\n`);
    }
    process.stdout.write(`${'total'.padEnd(8)} ${Object.entries(totals).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join('  ')}\n`);

    for (const schema of listed.tables) await source.enableTracking(schema, 7 * 24 * 3600 * 1000);
    const from = await source.snapshot();
    const fromVersion = from.version;
    await from.close();
    const changed = await withPg(srcUrl, (c) => makeChanges(c, Number(values.changes), 1, 42));
    process.stdout.write(`changes: ${changed} rows\n`);
    const snap = await source.snapshot();
    const ctotals: Record<string, number> = {};
    try {
      for (const schema of listed.tables) {
        const query = await withPg(srcUrl, async (c) => {
          const state = await readTrackingState(c, schema);
          const text = changesSql(schema, state!.sideTable, state!.keyTypes, fromVersion, snap.version);
          return time(() => pipeline(c.query(copyTo(text)), sink()));
        });
        let applied = 0;
        const apply = await time(async () => {
          // Tracking began after the population here: the mirror continues from the version it began at.
          await withPg(dstUrl, (c) => c.query(`UPDATE m._mirror_state SET lsn = $1 WHERE table_name = $2`, [fromVersion, schema.name]));
          const fence = await mirror.takeFence('session', 'profile');
          const r = await mirror.applyChanges(schema, snap.changes(schema, fromVersion), {
            fromVersion,
            toVersion: snap.version,
            fingerprint: snap.fingerprint,
            batchBytes: 8 * 1024 * 1024,
            fence,
          });
          applied = r.upserts + r.deletes;
        });
        // The mirror's statements one by one, on the raw pipe's copy of the table (the same rows, its own key).
        const changeText = await withPg(srcUrl, async (c) => {
          const state = await readTrackingState(c, schema);
          const chunks: Buffer[] = [];
          await pipeline(c.query(copyTo(changesSql(schema, state!.sideTable, state!.keyTypes, fromVersion, snap.version))), new Writable({ write: (chunk: Buffer, _e, cb) => (chunks.push(chunk), cb()) }));
          return Buffer.concat(chunks);
        });
        const steps = await withPg(dstUrl, async (c) => {
          const t: Record<string, number> = {};
          await c.query(mirrorSql.createStagingSql(schema));
          await c.query('BEGIN');
          t.stagingCopy = await time(() => pipeline(Readable.from([changeText]), c.query(copyFrom(mirrorSql.copyStagingSql(schema)))));
          t.analyze = await time(() => c.query(mirrorSql.analyzeStagingSql(schema)));
          t.delete = await time(() => c.query(mirrorSql.deleteFromStagingSql('raw', schema.name, schema)));
          t.upsert = await time(() => c.query(mirrorSql.upsertFromStagingSql('raw', schema.name, schema)));
          t.commit = await time(() => c.query('COMMIT'));
          return t;
        });
        for (const [k, v] of Object.entries(steps)) ctotals[k] = (ctotals[k] ?? 0) + v;
        process.stdout.write(`${' '.repeat(8)} mirror statements: ${Object.entries(steps).map(([k, v]) => `${k} ${v.toFixed(3)}s`).join('  ')}\n`);
        ctotals.sourceQuery = (ctotals.sourceQuery ?? 0) + query;
        ctotals.readAndApply = (ctotals.readAndApply ?? 0) + apply;
        process.stdout.write(`${schema.name.padEnd(8)} sourceQuery ${query.toFixed(2)}s  readAndApply ${apply.toFixed(2)}s (${applied} rows)\n`);
      }
    } finally {
      await snap.close();
    }
    process.stdout.write(`${'total'.padEnd(8)} ${Object.entries(ctotals).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join('  ')}\n`);
    await Promise.all([source.close(), mirror.close()]);
  } finally {
    await Promise.allSettled([src.stop(), dst.stop()]);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
