/**
 * A population split into key ranges, on real servers: the source's cuts and sibling snapshots (every range read
 * on its own connection, all at the one exported snapshot), and the mirror's shared shadow — ranges copied at
 * once, each resumed on its own after a failure, the swap refused until every range is done. The result is
 * compared with the source by an independent checksum.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgChangeSource } from '../../src/postgres/source';
import { PgMirror } from '../../src/postgres/mirror';
import { FailureType } from '../../src/core/errors';
import type { KeyRange, SplittableSnapshot, TableSchema } from '../../src/core/types';
import { rangesOf } from '../../activities/split-population';
import { query, tableChecksum } from '../support/checksum';
import { rejection } from '../support/failures';

const ROWS = 60_000;
let server: EmbeddedPg;
let sourceUrl: string;
let mirrorUrl: string;
let source: PgChangeSource;
let mirror: PgMirror;

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'split-population') });
  sourceUrl = await server.createDatabase('app');
  mirrorUrl = await server.createDatabase('partner');
  // A two-column key in which the first column repeats: cuts and resume keys are whole keys, compared as rows.
  await server.sql(
    `CREATE TABLE orders (region integer, id bigint, note text, PRIMARY KEY (region, id));
     INSERT INTO orders SELECT g % 7, g, repeat(md5(g::text), 3) || E'\\ttab' FROM generate_series(1, ${ROWS}) g;
     CREATE TABLE named (code text PRIMARY KEY, n integer);
     INSERT INTO named SELECT 'c' || g, g FROM generate_series(1, 5000) g;
     ANALYZE orders; ANALYZE named;
     CREATE TYPE mood AS ENUM ('sad', 'happy');
     CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
     CREATE TABLE kinds (
       id bigint, tag text, flag boolean, s smallint, i integer, p positive, n numeric(12,2), nn numeric, r real,
       d double precision, v varchar(20), c char(5), b bytea, day date, t time(3), tz timetz, ts timestamp,
       tstz timestamptz(6), iv interval, u uuid, j json, jb jsonb, m mood, PRIMARY KEY (id, tag));
     INSERT INTO kinds
       SELECT g, 'tag ' || (g % 3) || E' \t\\ é', g % 2 = 0, (g % 300)::smallint, -g, g, g / 7.0, CASE WHEN g % 10 = 0 THEN 'NaN' ELSE g * 1.000001 END,
              CASE g % 5 WHEN 0 THEN 'NaN'::real WHEN 1 THEN '-0'::real ELSE g / 3.0 END, CASE g % 4 WHEN 0 THEN 'Infinity' ELSE g / 9.0 END,
              'v' || g, 'c' || (g % 10), decode(md5(g::text), 'hex'), CASE WHEN g % 50 = 0 THEN 'infinity'::date ELSE date '2024-01-01' + g END,
              time '12:34:56.789' + g * interval '1 ms', timetz '01:02:03+05:30', timestamp '2024-02-29 23:59:59.999999' - g * interval '1 minute',
              CASE WHEN g % 60 = 0 THEN '-infinity' ELSE timestamptz '2024-03-01 00:00:00+00' + g * interval '1.5 seconds' END,
              make_interval(months => g % 13, days => g % 31, secs => g / 1000.0), md5(g::text)::uuid,
              json_build_object('g', g, 's', 'x"y'), jsonb_build_object('g', g, 'a', jsonb_build_array(1, 'two', null)),
              (ARRAY['sad', 'happy']::mood[])[g % 2 + 1]
       FROM generate_series(1, 20000) g;
     INSERT INTO kinds (id, tag) VALUES (0, '');`,
    'app',
  );
  source = new PgChangeSource({ url: sourceUrl, tenant: 'split', tracking: 'trigger', maxConnections: 6 });
  mirror = new PgMirror({ url: mirrorUrl, schema: 'mirror', tenant: 'split', maxConnections: 6 });
  await mirror.ensureState();
});

afterAll(async () => {
  await source?.close();
  await mirror?.close();
  await server?.stop();
});

async function tableNamed(name: string): Promise<TableSchema> {
  const t = (await source.listTables((n) => n === name)).tables[0];
  if (!t) throw new Error(`table ${name} not listed`);
  return t;
}

async function splittable(): Promise<SplittableSnapshot> {
  return (await source.snapshot()) as unknown as SplittableSnapshot;
}

async function text(stream: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(parts).toString('utf8');
}

/** The stream of `rows`, failing once `measure` has counted `limit` (a source connection lost mid-copy). */
function failingAfter(rows: Readable, limit: number, measure: (chunk: Buffer) => number): Readable {
  let seen = 0;
  return Readable.from(
    (async function* () {
      for await (const chunk of rows) {
        yield chunk as Buffer;
        seen += measure(chunk as Buffer);
        if (seen >= limit) throw new Error('source connection lost');
      }
    })(),
  );
}

const lines = (chunk: Buffer): number => chunk.toString('utf8').split('\n').length - 1;
const bytes = (chunk: Buffer): number => chunk.length;

describe('split population: source', () => {
  it('cuts a table into ranges of similar size whose union, read on sibling snapshots, is the table at the snapshot', async () => {
    const orders = await tableNamed('orders');
    const snap = await splittable();
    try {
      const whole = await text(snap.rows(orders));
      // Written after the snapshot: no sibling may see it.
      await server.sql(`INSERT INTO orders VALUES (99, 1, 'late'); DELETE FROM orders WHERE id = 5`, 'app');
      const cuts = await snap.rangeCuts(orders, 3);
      expect(cuts).toHaveLength(2);
      const ranges = rangesOf(cuts);
      const siblings = await snap.siblings(2);
      try {
        const parts = await Promise.all(ranges.map((r, i) => text((i === 0 ? snap : siblings[i - 1]!).rowsInRange(orders, r))));
        expect(parts.join('')).toBe(whole);
        const sizes = parts.map((p) => p.split('\n').length - 1);
        for (const n of sizes) expect(n).toBeGreaterThan(ROWS / 6);
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(ROWS);
      } finally {
        await Promise.all(siblings.map((s) => s.close()));
      }
    } finally {
      await snap.close();
      await server.sql(`DELETE FROM orders WHERE region = 99; INSERT INTO orders VALUES (5 % 7, 5, repeat(md5('5'), 3) || E'\\ttab')`, 'app');
    }
  });

  it('does not split a table whose key compares as text (its order depends on a collation)', async () => {
    const named = await tableNamed('named');
    const snap = await splittable();
    try {
      expect(await snap.rangeCuts(named, 2)).toEqual([]);
    } finally {
      await snap.close();
    }
  });
});

describe('binary COPY population', () => {
  it('loads every type it is offered for exactly as the source has it, and resumes after the key of the last tuple committed', async () => {
    const kinds = await tableNamed('kinds');
    const snap = await splittable();
    expect(snap.rowFormats?.(kinds)).toEqual(['pg-binary', 'text']);
    expect(mirror.rowFormats(kinds)).toEqual(['pg-binary', 'text']);
    await mirror.applySchema(kinds);
    const fence = await mirror.takeFence('populate:kinds', 'split test');
    const keys: (string | null)[][] = [];
    try {
      // The first attempt loses its source part-way; the second resumes after the key the marker recorded.
      const first = mirror.copyIntoShadow(kinds, failingAfter(snap.rows(kinds, undefined, 'pg-binary'), 600_000, bytes), {
        resume: false, version: snap.version, fence, chunkBytes: 100_000, format: 'pg-binary', onChunk: (p) => keys.push(p.lastKey ?? []),
      });
      await expect(first).rejects.toThrow('source connection lost');
      const progress = await mirror.shadowProgress(kinds);
      expect(progress!.rows).toBeGreaterThan(0);
      expect(progress!.rows).toBeLessThan(20_001);
      expect(progress!.lastKey).toEqual(keys.at(-1));
      const [row] = await query<{ id: string; tag: string }>(
        mirrorUrl,
        `SELECT k.id::text AS id, k.tag FROM mirror."_shadow_kinds" k ORDER BY k.id DESC, k.tag DESC LIMIT 1`,
      );
      expect(progress!.lastKey).toEqual([row!.id, row!.tag]);
      const fresh = await splittable();
      try {
        await mirror.copyIntoShadow(kinds, fresh.rows(kinds, progress!.lastKey!, 'pg-binary'), {
          resume: true, version: snap.version, fence, chunkBytes: 100_000, format: 'pg-binary', onChunk: () => undefined,
        });
      } finally {
        await fresh.close();
      }
      expect((await mirror.swapInShadow(kinds, snap.version, snap.fingerprint, fence)).rows).toBe(20_001);
    } finally {
      await snap.close();
    }
    const [src, dst] = await Promise.all([tableChecksum(sourceUrl, 'kinds', 'id, tag'), tableChecksum(mirrorUrl, 'mirror.kinds', 'id, tag')]);
    expect(dst).toEqual(src);
  });
});

describe('split population: mirror', () => {
  it('copies ranges at once into one shadow, refuses the swap while one is undone, and resumes that one after its last key', async () => {
    const orders = await tableNamed('orders');
    await mirror.applySchema(orders);
    const fence = await mirror.takeFence('populate:orders', 'split test');
    const snap = await splittable();
    const version = snap.version;
    const siblings = await snap.siblings(2);
    try {
      const ranges: KeyRange[] = rangesOf(await snap.rangeCuts(orders, 3));
      const plan = await mirror.planShadow(orders, { resume: false, version, fence, ranges });
      expect(plan.ranges?.map((r) => r.done)).toEqual([false, false, false]);
      const opts = { version, fence, chunkBytes: 64 * 1024, onChunk: () => undefined };

      // Ranges 0 and 2 complete side by side; range 1 loses its source after some chunks committed.
      const results = await Promise.allSettled([
        mirror.copyRangeIntoShadow(orders, 0, snap.rowsInRange(orders, ranges[0]!), opts),
        mirror.copyRangeIntoShadow(orders, 1, failingAfter(siblings[0]!.rowsInRange(orders, ranges[1]!), 8_000, lines), opts),
        mirror.copyRangeIntoShadow(orders, 2, siblings[1]!.rowsInRange(orders, ranges[2]!), opts),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);

      const err = await rejection(mirror.swapInShadow(orders, version, snap.fingerprint, fence));
      expect(err.type).toBe(FailureType.MirrorWriteFailed);
      expect(err.message).toContain('key ranges still to copy');

      const progress = await mirror.shadowProgress(orders);
      const [first, middle, last] = progress!.ranges!;
      expect([first!.done, middle!.done, last!.done]).toEqual([true, false, true]);
      expect(middle!.lastKey).not.toBeNull();
      expect(middle!.rows).toBeGreaterThan(0);
      expect(progress!.rows).toBe(first!.rows + middle!.rows + last!.rows);

      // Another split (or none) does not take up this shadow; the same one resumes with what it has.
      const resumed = await mirror.planShadow(orders, { resume: true, version, fence, ranges });
      expect(resumed.ranges?.[1]?.lastKey).toEqual(middle!.lastKey);
      const rest = await snap.siblings(1);
      try {
        await mirror.copyRangeIntoShadow(orders, 1, rest[0]!.rowsInRange(orders, { after: middle!.lastKey!, upTo: ranges[1]!.upTo! }), opts);
      } finally {
        await rest[0]!.close();
      }
      const swapped = await mirror.swapInShadow(orders, version, snap.fingerprint, fence);
      expect(swapped.rows).toBe(ROWS);
    } finally {
      await Promise.all(siblings.map((s) => s.close()));
      await snap.close();
    }
    const [src, dst] = await Promise.all([tableChecksum(sourceUrl, 'orders', 'region, id'), tableChecksum(mirrorUrl, 'mirror.orders', 'region, id')]);
    expect(dst).toEqual(src);
    expect((await mirror.readState()).find((s) => s.table === 'orders')?.lsn).toBe(version);
  });

  it('starts over when a resumed plan asks for other ranges than the shadow was cut into', async () => {
    const orders = await tableNamed('orders');
    const fence = await mirror.takeFence('populate:orders', 'split test');
    const snap = await splittable();
    try {
      const ranges = rangesOf(await snap.rangeCuts(orders, 2));
      await mirror.planShadow(orders, { resume: false, version: snap.version, fence, ranges });
      await mirror.copyRangeIntoShadow(orders, 0, snap.rowsInRange(orders, ranges[0]!), { version: snap.version, fence, chunkBytes: 64 * 1024, onChunk: () => undefined });
      const other = rangesOf([['3', '100']]);
      const plan = await mirror.planShadow(orders, { resume: true, version: snap.version, fence, ranges: other });
      expect(plan.rows).toBe(0);
      expect(plan.ranges?.map((r) => r.upTo ?? null)).toEqual([['3', '100'], null]);
      const shadowRows = await query<{ n: string }>(mirrorUrl, `SELECT count(*)::text AS n FROM mirror."_shadow_orders"`);
      expect(shadowRows[0]?.n).toBe('0');
    } finally {
      await snap.close();
    }
  });
});
