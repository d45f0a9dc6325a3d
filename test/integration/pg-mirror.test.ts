/**
 * The PostgreSQL mirror against a real server: DDL, chunked population with resume, change batches, typed
 * failures, schema evolution. Data is checked by dumping the mirror with COPY TO and comparing it with the exact
 * COPY text that was fed in, so every type's text form must survive the round trip.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { encodeLine } from '../../src/core/copy-text';
import { FailureType, MirrorError } from '../../src/core/errors';
import { schemaHash } from '../../src/core/schema-hash';
import type { Fence, KeyValues, PopulationProgress, TableSchema } from '../../src/core/types';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgMirror } from '../../src/postgres/mirror';
import { waitFor } from '../support/wait';

const SCHEMA = 'tenant one';
const FINGERPRINT = { system: '7345', timeline: '1' };

let server: EmbeddedPg;
let mirror: PgMirror;
let db: Client;

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'pg-mirror') });
  mirror = new PgMirror({ url: server.url(), schema: SCHEMA, tenant: 'one' });
  // The checking connection uses the same text settings as the adapters, so dumps are comparable.
  db = new Client({ connectionString: server.url(), options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1' });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await mirror?.close();
  await server?.stop();
});

function schemaOf(name: string, columns: TableSchema['columns'], primaryKey = ['id']): TableSchema {
  return { name, source: { schema: 'public', table: name }, columns, primaryKey };
}

const manyTypes = schemaOf('many', [
  { name: 'id', type: { kind: 'int64' }, nullable: false },
  { name: 'name', type: { kind: 'string', length: 20 }, nullable: false },
  { name: 'note', type: { kind: 'string' }, nullable: true },
  { name: 'amount', type: { kind: 'decimal', precision: 12, scale: 2 }, nullable: true },
  { name: 'ratio', type: { kind: 'float64' }, nullable: true },
  { name: 'flag', type: { kind: 'boolean' }, nullable: true },
  { name: 'born', type: { kind: 'date' }, nullable: true },
  { name: 'at', type: { kind: 'timestamptz' }, nullable: true },
  { name: 'clock', type: { kind: 'time', precision: 3 }, nullable: true },
  { name: 'data', type: { kind: 'binary' }, nullable: true },
  { name: 'tags', type: { kind: 'array', element: { kind: 'string' } }, nullable: true },
  { name: 'doc', type: { kind: 'jsonb' }, nullable: true },
  { name: 'u', type: { kind: 'uuid' }, nullable: true },
  { name: 'tiny', type: { kind: 'int8' }, nullable: true },
]);

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** One row of `manyTypes`, every value in the text form PostgreSQL prints back. */
function manyRow(i: number, version = 0): (string | null)[] {
  return [
    String(i),
    `name ${i}${version ? ` v${version}` : ''}`,
    i % 3 === 0 ? null : `tab\there\nnew "q" back\\slash \r ${i} é ✓`,
    `${i}.${pad(i % 100, 2)}`,
    String(i + 0.5),
    i % 2 ? 't' : 'f',
    `2024-01-${pad((i % 28) + 1, 2)}`,
    `2024-02-03 04:05:${pad(i % 60, 2)}+00`,
    '12:34:56.789',
    `\\x${Buffer.from([i % 256, 0, 255, 10, 9, 92]).toString('hex')}`,
    `{a${i},"b c"}`,
    `{"k": ${i}}`,
    `00000000-0000-0000-0000-${pad(i, 12)}`,
    String(i % 256),
  ];
}

function copyText(rows: (string | null)[][]): string {
  return rows.map(encodeLine).join('');
}

/** A stream of COPY text, one line per chunk (the adapter must cope with any chunking). */
function linesStream(rows: (string | null)[][]): Readable {
  return Readable.from(rows.map(encodeLine));
}

/** The table's content as COPY text, in key order, columns in schema order. */
async function dump(schema: TableSchema, relation = schema.name, orderBy = schema.primaryKey): Promise<string> {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const cols = schema.columns.map((c) => q(c.name)).join(', ');
  const stream = db.query(
    copyTo(`COPY (SELECT ${cols} FROM ${q(SCHEMA)}.${q(relation)} ORDER BY ${orderBy.map(q).join(', ')}) TO STDOUT`),
  );
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

async function count(relation: string): Promise<number> {
  const res = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${SCHEMA}"."${relation.replace(/"/g, '""')}"`);
  return Number(res.rows[0]?.n);
}

async function stateOf(table: string) {
  return (await mirror.readState()).find((s) => s.table === table);
}

async function columnsOf(relation: string): Promise<{ name: string; type: string; notNull: boolean }[]> {
  const res = await db.query<{ name: string; type: string; not_null: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [SCHEMA, relation],
  );
  return res.rows.map((r) => ({ name: r.name, type: r.type, notNull: r.not_null }));
}

/** One population fence per table (taking a fence again would end the claim of the tests before). */
const fences = new Map<string, Fence>();
async function fenceFor(table: string, on: PgMirror = mirror): Promise<Fence> {
  const known = fences.get(table);
  if (known) return known;
  const fence = await on.takeFence(`populate:${table}`, 'pg-mirror test');
  fences.set(table, fence);
  return fence;
}

/** Population with the version and fence a populateTable activity gives. */
async function copy(
  schema: TableSchema,
  rows: Readable,
  opts: { resume?: boolean; chunkBytes: number; onChunk?: (p: PopulationProgress) => void; version?: string },
): Promise<PopulationProgress> {
  return mirror.copyIntoShadow(schema, rows, {
    resume: opts.resume ?? false,
    version: opts.version ?? '1',
    chunkBytes: opts.chunkBytes,
    fence: await fenceFor(schema.name),
    onChunk: opts.onChunk ?? (() => undefined),
  });
}

async function swap(schema: TableSchema, lsn: string): Promise<{ rows: number }> {
  return mirror.swapInShadow(schema, lsn, FINGERPRINT, await fenceFor(schema.name));
}

let sessionFence: Fence | null = null;
/** A change batch from the LSN the mirror holds now, as a sync session sends it. */
async function apply(schema: TableSchema, changes: Readable, toVersion: string, batchBytes: number, on: PgMirror = mirror) {
  sessionFence ??= await mirror.takeFence('session', 'pg-mirror test');
  const fromVersion = (await stateOf(schema.name))?.lsn ?? '0';
  return on.applyChanges(schema, changes, { fromVersion, toVersion, fingerprint: FINGERPRINT, batchBytes, fence: sessionFence });
}

async function expectFailure(promise: Promise<unknown>, type: string): Promise<MirrorError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MirrorError);
  expect((err as MirrorError).type).toBe(type);
  return err as MirrorError;
}

describe('PgMirror', () => {
  it('ensureState is safe when workers race, and starts empty', async () => {
    const others = [1, 2, 3].map(() => new PgMirror({ url: server.url(), schema: SCHEMA, tenant: 'one' }));
    try {
      await Promise.all([mirror.ensureState(), ...others.map((m) => m.ensureState())]);
    } finally {
      await Promise.all(others.map((m) => m.close()));
    }
    await mirror.ping();
    expect(await mirror.readState()).toEqual([]);
  });

  it('readState of a schema that does not exist yet is empty', async () => {
    const fresh = new PgMirror({ url: server.url(), schema: 'never created', tenant: 'x' });
    try {
      expect(await fresh.readState()).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('creates a table of many types, then finds it unchanged', async () => {
    expect(await mirror.applySchema(manyTypes)).toEqual({ outcome: 'created' });
    const cols = await columnsOf('many');
    expect(cols.map((c) => c.type)).toEqual([
      'bigint', 'character varying(20)', 'text', 'numeric(12,2)', 'double precision', 'boolean', 'date',
      'timestamp with time zone', 'time(3) without time zone', 'bytea', 'text[]', 'jsonb', 'uuid', 'smallint',
    ]);
    expect(cols.filter((c) => c.notNull).map((c) => c.name)).toEqual(['id', 'name']);
    expect(await mirror.applySchema(manyTypes)).toEqual({ outcome: 'unchanged' });
  });

  it('populates a shadow in chunks, invisible until the swap, then swaps it in with its LSN', async () => {
    const rows = Array.from({ length: 400 }, (_, i) => manyRow(i + 1));
    const progress: PopulationProgress[] = [];
    const result = await copy(manyTypes, linesStream(rows), { chunkBytes: 4000, onChunk: (p) => progress.push(p), version: '1000' });
    expect(result.rows).toBe(400);
    expect(result.bytes).toBe(Buffer.byteLength(copyText(rows)));
    expect(result.lastKey).toEqual(['400']);
    expect(progress.length).toBeGreaterThan(5);
    // Cumulative, increasing, and each report's key is the last row of what was committed so far.
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.rows).toBeGreaterThan(progress[i - 1]!.rows);
    for (const p of progress) expect(p.lastKey).toEqual([String(p.rows)]);
    expect(progress.at(-1)).toEqual(result);

    expect(await count('many')).toBe(0);
    expect(await count('_shadow_many')).toBe(400);
    expect(await mirror.shadowProgress(manyTypes)).toMatchObject({ table: 'many', version: '1000', lastKey: ['400'], rows: 400 });
    expect(await mirror.readPopulations()).toEqual([{ table: 'many', rows: 400 }]);

    expect(await swap(manyTypes, '1000')).toEqual({ rows: 400 });
    expect(await dump(manyTypes)).toBe(copyText(rows));
    expect(await mirror.shadowProgress(manyTypes)).toBeNull();
    expect(await mirror.readPopulations()).toEqual([]);
    const state = await stateOf('many');
    expect(state).toMatchObject({ lsn: '1000', schemaHash: schemaHash(manyTypes), fingerprint: FINGERPRINT, rows: 400 });
    expect(state?.populatedAt).not.toBeNull();
    expect(state?.lastSyncAt).not.toBeNull();
  });

  it('repopulates an existing table: the swap replaces it (key names do not collide)', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => manyRow(i * 2 + 1, 7));
    await copy(manyTypes, linesStream(rows), { chunkBytes: 1 << 20 });
    expect(await swap(manyTypes, '1001')).toEqual({ rows: 50 });
    expect(await dump(manyTypes)).toBe(copyText(rows));
    const pk = await db.query<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'`,
      [`"${SCHEMA}"."many"`],
    );
    expect(pk.rows.map((r) => r.conname)).toEqual(['_pk_many']);
  });

  it('an empty population swaps in an empty table', async () => {
    const empty = schemaOf('empty', [{ name: 'id', type: { kind: 'int32' }, nullable: false }]);
    await mirror.applySchema(empty);
    const result = await copy(empty, Readable.from([]), { chunkBytes: 100 });
    expect(result).toEqual({ rows: 0, bytes: 0, lastKey: null });
    expect(await swap(empty, '5')).toEqual({ rows: 0 });
    expect(await stateOf('empty')).toMatchObject({ lsn: '5', rows: 0 });
  });

  describe('a table named with a dot and a quote', () => {
    const odd = schemaOf('sales.or"ders', [
      { name: 'id', type: { kind: 'int32' }, nullable: false },
      { name: 'line', type: { kind: 'int32' }, nullable: false },
      { name: 'what"', type: { kind: 'string' }, nullable: true },
    ], ['id', 'line']);
    const oddRow = (i: number): (string | null)[] => [String(Math.ceil(i / 2)), String((i - 1) % 2), `item\t${i}\\`];
    // In key order (id, line), as a source sends them.
    const all = Array.from({ length: 300 }, (_, i) => oddRow(i + 1));

    it('resumes a population that failed half-way from the last committed key', async () => {
      expect(await mirror.applySchema(odd)).toEqual({ outcome: 'created' });
      // The source fails after 200 rows: the chunks committed before it stay in the shadow.
      const failing = Readable.from(
        (async function* () {
          for (const row of all.slice(0, 200)) yield encodeLine(row);
          throw new Error('source connection lost');
        })(),
      );
      const seen: PopulationProgress[] = [];
      const err = await expectFailure(
        copy(odd, failing, { chunkBytes: 500, onChunk: (p) => seen.push(p), version: '77' }),
        FailureType.SourceReadFailed,
      );
      expect(err.context.side).toBe('source');
      const last = (await mirror.shadowProgress(odd))?.lastKey ?? null;
      expect(last).toEqual(seen.at(-1)?.lastKey);
      const done = seen.at(-1)!.rows;
      expect(done).toBeGreaterThan(0);
      expect(done).toBeLessThan(200);
      expect(await count(`_shadow_${odd.name}`)).toBe(done);

      // Resume: only the rows after the last key, as the source would send them.
      const after = (row: (string | null)[], key: KeyValues): boolean =>
        Number(row[0]) > Number(key[0]) || (Number(row[0]) === Number(key[0]) && Number(row[1]) > Number(key[1]));
      const rest = all.filter((r) => after(r, last!));
      const resumed = await copy(odd, linesStream(rest), { resume: true, chunkBytes: 500, version: '77' });
      expect(resumed.rows).toBe(rest.length);
      expect(await swap(odd, '77')).toEqual({ rows: 300 });
      const expected = [...all].sort((a, b) => Number(a[0]) - Number(b[0]) || Number(a[1]) - Number(b[1]));
      expect(await dump(odd)).toBe(copyText(expected));
      expect(await stateOf(odd.name)).toMatchObject({ lsn: '77', rows: 300 });
    });

    it('a resume of a shadow built for another schema, or at another version, starts over', async () => {
      await copy(odd, linesStream(all.slice(0, 10)), { chunkBytes: 100, version: '80' });
      const changed: TableSchema = { ...odd, columns: [...odd.columns, { name: 'extra', type: { kind: 'int32' }, nullable: true }] };
      expect(await mirror.shadowProgress(changed)).toBeNull();
      const rows = all.slice(0, 4).map((r) => [...r, '9']);
      const result = await copy(changed, linesStream(rows), { resume: true, chunkBytes: 100, version: '80' });
      expect(result.rows).toBe(4);
      expect(await count(`_shadow_${odd.name}`)).toBe(4);
      const otherVersion = await copy(changed, linesStream(rows.slice(0, 2)), { resume: true, chunkBytes: 100, version: '81' });
      expect(otherVersion.rows).toBe(2);
      expect(await count(`_shadow_${odd.name}`)).toBe(2);
    });

    it('dropTable removes the table, its shadow and its state', async () => {
      await mirror.dropTable(odd.name);
      const rels = await db.query(`SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND relname LIKE '%or"ders%'`, [SCHEMA]);
      expect(rels.rows).toEqual([]);
      expect(await stateOf(odd.name)).toBeUndefined();
    });
  });

  describe('applyChanges', () => {
    const kv = schemaOf('kv', [
      { name: 'id', type: { kind: 'int32' }, nullable: false },
      { name: 'v', type: { kind: 'string', length: 10 }, nullable: true },
      { name: 'b', type: { kind: 'binary' }, nullable: true },
    ]);
    /** The model of the table: what the mirror must hold. */
    const model = new Map<number, (string | null)[]>();
    const put = (id: number, v: string | null, b: string | null = null): (string | null)[] => {
      const row = [String(id), v, b];
      model.set(id, row);
      return row;
    };
    const modelText = (): string => copyText([...model.keys()].sort((a, b) => a - b).map((k) => model.get(k)!));
    const U = (id: number, v: string | null, b: string | null = null): (string | null)[] => ['U', ...put(id, v, b)];
    const D = (id: number): (string | null)[] => {
      model.delete(id);
      return ['D', String(id), null, null];
    };

    beforeAll(async () => {
      await mirror.applySchema(kv);
      const initial = Array.from({ length: 20 }, (_, i) => put(i + 1, `v${i + 1}`));
      await copy(kv, linesStream(initial), { chunkBytes: 1 << 16, version: '100' });
      await swap(kv, '100');
    });

    it('applies U and D lines across batches; only the last batch moves the LSN', async () => {
      const first = [U(1, 'one'), U(2, 'a\tb\nc'), D(3), D(4), U(21, 'new', '\\x00ff0a5c'), D(999)];
      const second = [U(5, null), D(6), U(22, 'x\\y'), U(7, 'seven')];
      const changes = Readable.from(
        (async function* () {
          for (const line of first) yield encodeLine(line);
          // The next line starts a second batch; the first must now be committed, with the LSN untouched.
          yield encodeLine(second[0]!);
          await waitFor(async () => (await db.query(`SELECT 1 FROM "${SCHEMA}".kv WHERE id = 21`)).rowCount === 1, {
            what: 'first batch committed',
            timeoutMs: 20_000,
          });
          expect((await stateOf('kv'))?.lsn).toBe('100');
          for (const line of second.slice(1)) yield encodeLine(line);
        })(),
      );
      const firstBytes = Buffer.byteLength(copyText(first));
      const result = await apply(kv, changes, '200', firstBytes);
      expect(result).toEqual({ upserts: 6, inserts: 2, updates: 4, deletes: 3, bytes: firstBytes + Buffer.byteLength(copyText(second)) });
      expect(await dump(kv)).toBe(modelText());
      expect(await stateOf('kv')).toMatchObject({ lsn: '200', rows: model.size, fingerprint: FINGERPRINT });
    });

    it('re-applying the same changes is idempotent', async () => {
      const before = modelText();
      const lines = [U(1, 'one'), D(3), U(21, 'new', '\\x00ff0a5c')];
      const result = await apply(kv, linesStream(lines), '201', 10);
      expect(result.deletes).toBe(0);
      expect(await dump(kv)).toBe(before);
      expect(await stateOf('kv')).toMatchObject({ lsn: '201', rows: model.size });
    });

    it('a rejected value rolls the batch back: data and LSN unchanged; the table fails alone (TableFailed), naming no value', async () => {
      const before = await dump(kv);
      const stateBefore = await stateOf('kv');
      const lines = [['U', '1', 'changed', null], ['D', '2', null, null], ['U', '8', 'far too long for ten', null]];
      const err = await expectFailure(apply(kv, linesStream(lines), '300', 1 << 20), FailureType.TableFailed);
      expect(err.context).toMatchObject({ table: 'kv', operation: 'apply changes', side: 'mirror' });
      expect(err.message).toMatch(/value too long for type character varying\(10\) \(SQLSTATE 22001, column v\)/);
      expect(err.message).not.toContain('far too long');
      expect(err.retryable).toBe(false);
      expect(await dump(kv)).toBe(before);
      expect(await stateOf('kv')).toEqual(stateBefore);
      // The pool is still usable.
      await mirror.ping();
    });

    it('a value rejected at the start of a large batch leaves its connection usable', async () => {
      const single = new PgMirror({ url: server.url(), schema: SCHEMA, tenant: 'one', maxConnections: 1 });
      try {
        const before = await dump(kv);
        const block = Buffer.from(copyText(Array.from({ length: 2000 }, (_, i) => ['U', String(1000 + i), 'ok', null])));
        let sent = 0;
        const stream = new Readable({
          read() {
            if (sent === 0) this.push(encodeLine(['U', '1', 'far too long for ten', null]));
            else if (sent > 200) this.push(null);
            else this.push(block); // the same keys again and again: harmless, the first line already failed
            sent++;
          },
        });
        await expectFailure(apply(kv, stream, '300', 64 << 20, single), FailureType.TableFailed);
        expect(await dump(kv)).toBe(before);
        // The only connection of that pool still works, for a query and for another COPY.
        await single.ping();
        const ok = await apply(kv, linesStream([U(8, 'eight')]), '202', 100, single);
        expect(ok.upserts).toBe(1);
        expect(await dump(kv)).toBe(modelText());
      } finally {
        await single.close();
      }
    });

    it('a malformed line also fails the table and leaves everything as it was', async () => {
      const before = await dump(kv);
      const err = await expectFailure(apply(kv, Readable.from(['U\t1\tonly two fields\n']), '300', 100), FailureType.TableFailed);
      expect(err.message).not.toContain('postgres:postgres');
      expect(err.message).not.toContain('only two fields');
      expect(await dump(kv)).toBe(before);
      expect((await stateOf('kv'))?.lsn).toBe('202');
    });

    it('a stale writer cannot write: an LSN that moved, or a fence a newer session took', async () => {
      const before = await dump(kv);
      const stateBefore = await stateOf('kv');
      const fence = await mirror.takeFence('session', 'the newer session');
      const stale = await expectFailure(
        mirror.applyChanges(kv, linesStream([['U', '1', 'stale', null]]), { fromVersion: '100', toVersion: '150', fingerprint: FINGERPRINT, batchBytes: 100, fence }),
        FailureType.Fenced,
      );
      expect(stale.message).toMatch(/the LSN moved to 202 while changes from 100 were applied/);
      const older = sessionFence!;
      sessionFence = fence;
      const fenced = await expectFailure(
        mirror.applyChanges(kv, linesStream([['U', '1', 'stale', null]]), { fromVersion: '202', toVersion: '250', fingerprint: FINGERPRINT, batchBytes: 100, fence: older }),
        FailureType.Fenced,
      );
      expect(fenced.message).toMatch(/a newer writer took over session/);
      expect(await dump(kv)).toBe(before);
      expect(await stateOf('kv')).toEqual(stateBefore);
    });

    it('an empty change stream still records the version and the sync time', async () => {
      const before = await stateOf('kv');
      const result = await apply(kv, Readable.from([]), '400', 100);
      expect(result).toEqual({ upserts: 0, inserts: 0, updates: 0, deletes: 0, bytes: 0 });
      const after = await stateOf('kv');
      expect(after?.lsn).toBe('400');
      expect(after?.rows).toBe(before?.rows);
      expect(Date.parse(after!.lastSyncAt!)).toBeGreaterThanOrEqual(Date.parse(before!.lastSyncAt!));
    });

    it('a key-only table upserts with DO NOTHING', async () => {
      const keys = schemaOf('keys', [
        { name: 'a', type: { kind: 'int32' }, nullable: false },
        { name: 'b', type: { kind: 'string' }, nullable: false },
      ], ['a', 'b']);
      await mirror.applySchema(keys);
      await copy(keys, Readable.from([]), { chunkBytes: 100 });
      await swap(keys, '0');
      const lines = [['U', '1', 'x'], ['U', '1', 'y'], ['U', '2', 'x']];
      expect(await apply(keys, linesStream(lines), '1', 100)).toMatchObject({ upserts: 3 });
      const again = [['U', '1', 'x'], ['D', '2', 'x']];
      expect(await apply(keys, linesStream(again), '2', 100)).toMatchObject({ upserts: 0, deletes: 1 });
      expect(await dump(keys)).toBe(copyText([['1', 'x'], ['1', 'y']]));
    });
  });

  describe('applySchema on a populated table', () => {
    const base = schemaOf('evolve', [
      { name: 'id', type: { kind: 'int32' }, nullable: false },
      { name: 'name', type: { kind: 'string', length: 5 }, nullable: false },
      { name: 'old', type: { kind: 'boolean' }, nullable: true },
    ]);
    const rows = Array.from({ length: 10 }, (_, i) => [String(i + 1), `n${i}`, 't']);

    beforeAll(async () => {
      await mirror.applySchema(base);
      await copy(base, linesStream(rows), { chunkBytes: 1000 });
      await swap(base, '10');
    });

    it('alters compatible differences in place and keeps the data', async () => {
      const next = schemaOf('evolve', [
        { name: 'id', type: { kind: 'int64' }, nullable: false },
        { name: 'name', type: { kind: 'string', length: 50 }, nullable: true },
        { name: 'added', type: { kind: 'date' }, nullable: false },
      ]);
      const result = await mirror.applySchema(next);
      expect(result.outcome).toBe('altered');
      if (result.outcome !== 'altered') return;
      expect(result.needsBackfill).toBe(true);
      expect(result.changes).toHaveLength(5);
      expect(await columnsOf('evolve')).toEqual([
        { name: 'id', type: 'bigint', notNull: true },
        { name: 'name', type: 'character varying(50)', notNull: false },
        // Added nullable although the source says NOT NULL: the rows already there have no value yet.
        { name: 'added', type: 'date', notNull: false },
      ]);
      expect(await dump(next)).toBe(copyText(rows.map((r) => [r[0]!, r[1]!, null])));
      // The added column's values are owed, recorded with the change (a crash now cannot lose the backfill).
      expect(await stateOf('evolve')).toMatchObject({ schemaHash: schemaHash(next), lsn: '10', rows: 10, needsBackfill: true });
      expect(await mirror.applySchema(next)).toEqual({ outcome: 'unchanged' });
      await copy(next, linesStream(rows.map((r) => [r[0]!, r[1]!, '2024-01-01'])), { chunkBytes: 1000 });
      await swap(next, '11');
      expect(await stateOf('evolve')).toMatchObject({ lsn: '11', needsBackfill: false });
    });

    it('an incompatible change replaces the table: its data and LSN are gone', async () => {
      const narrowed = schemaOf('evolve', [
        { name: 'id', type: { kind: 'int64' }, nullable: false },
        { name: 'name', type: { kind: 'string', length: 3 }, nullable: true },
      ]);
      const result = await mirror.applySchema(narrowed);
      expect(result.outcome).toBe('incompatible');
      if (result.outcome === 'incompatible') expect(result.reason).toContain('name');
      expect((await columnsOf('evolve')).map((c) => c.type)).toEqual(['bigint', 'character varying(3)']);
      expect(await count('evolve')).toBe(0);
      expect(await stateOf('evolve')).toMatchObject({ lsn: null, rows: null });
      expect(await mirror.applySchema(narrowed)).toEqual({ outcome: 'unchanged' });
    });

    it('a primary key change is incompatible', async () => {
      const rekeyed = schemaOf('evolve', [
        { name: 'id', type: { kind: 'int64' }, nullable: false },
        { name: 'name', type: { kind: 'string', length: 3 }, nullable: false },
      ], ['id', 'name']);
      expect((await mirror.applySchema(rekeyed)).outcome).toBe('incompatible');
    });
  });

  it('stores a type the mirror database lacks as text, and says so', async () => {
    const odd = schemaOf('odd_types', [
      { name: 'id', type: { kind: 'int32' }, nullable: false },
      { name: 'p', type: { kind: 'native', dialect: 'postgres', name: 'pair' }, nullable: true },
      { name: 'ps', type: { kind: 'array', element: { kind: 'native', dialect: 'postgres', name: 'pair' } }, nullable: true },
      { name: 'net', type: { kind: 'native', dialect: 'postgres', name: 'inet' }, nullable: true },
    ]);
    const result = await mirror.applySchema(odd);
    expect(result.outcome).toBe('created');
    expect(result.notes).toEqual([
      'column "p" (type pair) is stored as text: the mirror database has no type pair',
      'column "ps" (type pair[]) is stored as text: the mirror database has no type pair[]',
    ]);
    expect((await columnsOf('odd_types')).map((c) => c.type)).toEqual(['integer', 'text', 'text', 'inet']);
    const rows = [['1', '(1,2)', '{"(1,2)","(3,4)"}', '10.0.0.1']];
    await copy(odd, linesStream(rows), { chunkBytes: 100 });
    await swap(odd, '1');
    expect(await dump(odd)).toBe(copyText(rows));
    expect(await apply(odd, linesStream([['U', '2', '(5,6)', null, null]]), '2', 100)).toMatchObject({ upserts: 1 });
    expect((await mirror.applySchema(odd)).outcome).toBe('unchanged');
  });

  it('a table without a key is created without one, populated and swapped in whole', async () => {
    const heap = schemaOf('heap', [{ name: 'a', type: { kind: 'int32' }, nullable: true }, { name: 'b', type: { kind: 'string' }, nullable: true }], []);
    expect((await mirror.applySchema(heap)).outcome).toBe('created');
    const rows = [['1', 'x'], ['1', 'x'], [null, null]];
    await copy(heap, linesStream(rows), { chunkBytes: 1 });
    expect(await swap(heap, '3')).toEqual({ rows: 3 });
    expect(await count('heap')).toBe(3);
    const keys = await db.query(`SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'heap'`, [SCHEMA]);
    expect(keys.rowCount).toBe(0);
    await copy(heap, linesStream(rows.slice(0, 1)), { chunkBytes: 100 });
    expect(await swap(heap, '4')).toEqual({ rows: 1 });
  });

  it('never touches what it did not create: a partner table of a mirrored name fails that table, and survives wipe and drop', async () => {
    await db.query(`CREATE TABLE "${SCHEMA}".partners_own (id int PRIMARY KEY, note text); INSERT INTO "${SCHEMA}".partners_own VALUES (1, 'keep me')`);
    const clash = schemaOf('partners_own', [{ name: 'id', type: { kind: 'int32' }, nullable: false }]);
    const err = await expectFailure(mirror.applySchema(clash), FailureType.TableFailed);
    expect(err.message).toMatch(/a table named "partners_own" already exists in the mirror schema and was not created by tenant-mirror/);
    await mirror.dropTable('partners_own');
    expect(await count('partners_own')).toBe(1);
    expect((await mirror.readState()).length).toBeGreaterThan(0);
    await mirror.wipeAll();
    expect(await mirror.readState()).toEqual([]);
    const left = await db.query<{ relname: string }>(
      `SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND relkind = 'r' ORDER BY relname`,
      [SCHEMA],
    );
    expect(left.rows.map((r) => r.relname)).toEqual(['_mirror_fence', '_mirror_log', '_mirror_state', 'partners_own']);
    expect(await count('partners_own')).toBe(1);
  });

  it('an unreachable server is Unavailable', async () => {
    const gone = new PgMirror({ url: 'postgres://postgres:secret@127.0.0.1:1/postgres', schema: 's', tenant: 't' });
    try {
      const err = await expectFailure(gone.ping(), FailureType.Unavailable);
      expect(err.message).not.toContain('secret');
    } finally {
      await gone.close();
    }
  });
});
