/**
 * SQL Server on both sides, against real servers.
 *
 * 1. Always: the text forms the SQL Server source produces are COPYed into a real PostgreSQL mirror table of the
 *    mapped types and read back (no SQL Server needed: the inputs are the strings SQL Server's CONVERT styles
 *    produce, as documented).
 * 2. With MSSQL_URL (e.g. the compose stack: mssql://sa:<password>@localhost:1433/master?trustServerCertificate=true):
 *    SQL Server → PostgreSQL and PostgreSQL → SQL Server, population then incremental changes, checked by comparing
 *    a per-row canonical text computed by an independent query on each side; resume of a population; typed failures
 *    (TRUNCATE → TrackingExpired); tables without a primary key listed keyless (mirrored by refresh). Issue 13: a text key into a mirror
 *    database whose collation differs from the server's and is case-sensitive; a login with only SELECT and VIEW
 *    CHANGE TRACKING; RESTORE … WITH REPLACE over the live source detected; a datetime composite key resumed
 *    mid-population; a population on an idle database, and tracking re-enabled on it. Throwaway databases (and one
 *    login) are created on the SQL Server and dropped afterwards; the login given must be allowed to create them
 *    (sysadmin, e.g. sa).
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import sql from 'mssql';
import { encodeLine } from '../../src/core/copy-text';
import { FailureType, MirrorError } from '../../src/core/errors';
import type { ChangeSource, Fence, LogicalType, Mirror, SourceFingerprint, TableSchema, Version } from '../../src/core/types';
import { continuityBreak } from '../../activities/decide';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { logicalToPgType } from '../../src/postgres/types';
import { PgChangeSource } from '../../src/postgres/source';
import { PgMirror } from '../../src/postgres/mirror';
import { MssqlChangeSource } from '../../src/mssql/source';
import { MssqlMirror } from '../../src/mssql/mirror';
import { parseMssqlUrl, toMssqlConfig } from '../../src/mssql/connection';
import { mssqlToCopyField } from '../../src/mssql/values';
import { startPgPair, type PgPair } from '../support/pg';

const MSSQL_URL = process.env.MSSQL_URL;
if (!MSSQL_URL) console.log('SQL Server integration suite skipped: MSSQL_URL is not set (no SQL Server engine can run here)');

const WEEK = 7 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------------------------
// 1. SQL Server text forms → a real PostgreSQL mirror

describe('SQL Server value forms are valid PostgreSQL COPY input', () => {
  let server: EmbeddedPg;
  let db: Client;

  beforeAll(async () => {
    server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'mssql-values') });
    db = new Client({ connectionString: server.url(), options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1' });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    await server?.stop();
  });

  // [logical type as read from SQL Server, the string SQL Server's CONVERT produces, what PostgreSQL then holds]
  const cases: [string, LogicalType, string, string][] = [
    ['bit', { kind: 'boolean' }, '1', 'true'],
    ['tinyint', { kind: 'int8' }, '255', '255'],
    ['bigint', { kind: 'int64' }, '-9223372036854775808', '-9223372036854775808'],
    ['decimal(38,10)', { kind: 'decimal', precision: 38, scale: 10 }, '1234567890123456789012345678.0123456789', '1234567890123456789012345678.0123456789'],
    ['money', { kind: 'money' }, '-922337203685477.5808', '-922337203685477.5808'],
    ['float', { kind: 'float64' }, '1.0000000000000001E-1', '0.1'],
    ['real', { kind: 'float32' }, '1.00000001E-1', '0.1'],
    ['nvarchar(max)', { kind: 'string' }, 'tab\tnl\nback\\slash ünï 😀 NUL\u0000gone', 'tab\tnl\nback\\slash ünï 😀 NULgone'],
    ['nchar(3) (character(n)::text drops the padding)', { kind: 'string', length: 3, fixed: true }, 'ab ', 'ab'],
    ['varbinary(max)', { kind: 'binary' }, '00FF10', '\\x00ff10'],
    ['rowversion', { kind: 'binary', length: 8, fixed: true }, '00000000000007D1', '\\x00000000000007d1'],
    ['date', { kind: 'date' }, '0001-01-01', '0001-01-01'],
    ['time(7)', { kind: 'time', precision: 7 }, '23:59:59.1234567', '23:59:59.123457'],
    ['datetime', { kind: 'timestamp', precision: 3 }, '2024-02-29 13:14:15.997', '2024-02-29 13:14:15.997'],
    ['datetime2(7) (rounded to 6 digits by PostgreSQL)', { kind: 'timestamp', precision: 7 }, '2024-02-29 13:14:15.1234567', '2024-02-29 13:14:15.123457'],
    ['datetimeoffset(7)', { kind: 'timestamptz', precision: 7 }, '2024-02-29 13:14:15.1234560 +05:30', '2024-02-29 07:44:15.123456+00'],
    ['uniqueidentifier', { kind: 'uuid' }, '6F9619FF-8B86-D011-B42D-00C04FC964FF', '6f9619ff-8b86-d011-b42d-00c04fc964ff'],
    ['xml', { kind: 'xml' }, '<a b="1">x</a>', '<a b="1">x</a>'],
    ['hierarchyid', { kind: 'native', dialect: 'mssql', name: 'hierarchyid' }, '/1/2.5/', '/1/2.5/'],
    ['geography', { kind: 'native', dialect: 'mssql', name: 'geography' }, 'SRID=4326;POINT (1.5 2.5)', 'SRID=4326;POINT (1.5 2.5)'],
  ];

  it.each(cases)('%s', async (_name, type, serverText, expected) => {
    const column = logicalToPgType(type);
    await db.query('DROP TABLE IF EXISTS v');
    await db.query(`CREATE TABLE v (x ${column})`);
    const line = encodeLine([mssqlToCopyField(type, serverText)]);
    const copy = db.query(copyFrom('COPY v (x) FROM STDIN'));
    await new Promise<void>((resolve, reject) => {
      copy.on('finish', resolve);
      copy.on('error', reject);
      copy.end(line);
    });
    const res = await db.query<{ x: string }>('SELECT x::text AS x FROM v');
    expect(res.rows[0]?.x).toBe(expected);
  });
});

describe('XML compared as one document, whoever serialised it', () => {
  it.each([
    ['<a v="1"/>', '<a v="1" />'],
    ["<a v='1'></a>", '<a v="1" />'],
    ['<?xml version="1.0" encoding="UTF-8"?><r n="2"><c>2</c></r>', '<r n="2"><c>2</c></r>'],
    ['<changed/>', '<changed />'],
  ])('%s ≡ %s', (pg, ms) => {
    expect(xmlNorm(pg)).toBe(xmlNorm(ms));
  });

  it('still tells different documents apart', () => {
    expect(xmlNorm('<a v="1"/>')).not.toBe(xmlNorm('<a v="2" />'));
    expect(xmlNorm('<a>x</a>')).not.toBe(xmlNorm('<a />'));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Against a real SQL Server

/** A column of a test table: its declaration and an independent canonical text on each side. */
interface Col {
  name: string;
  ms: string;
  pg: string;
  /** Canonical text expressions (NULL → '<null>' is added by the harness). */
  msCanon: (c: string) => string;
  pgCanon: (c: string) => string;
  norm?: (s: string) => string;
}

/** Trailing zeros of fractional seconds differ between the two servers' text forms. */
const frac = (s: string): string => s.replace(/(\.\d*?)0+(?=$|[ +-]\d\d:?\d\d$)/, '$1').replace(/\.(?=$|[ +-]\d\d:?\d\d$)/, '');
const utc = (s: string): string => frac(s.replace(/ ?\+00:?00$/, '').replace(/\+00$/, ''));

/**
 * SQL Server keeps xml parsed and writes it out anew: `<a v="1"/>` comes back as `<a v="1" />`, `<a></a>` as
 * `<a />`, attributes in double quotes, without the XML declaration (docs/type-mapping.md). PostgreSQL keeps the
 * text it was given. The same document compares equal in this one form.
 */
function xmlNorm(s: string): string {
  return s
    .replace(/^\s*<\?xml\b[^?]*\?>\s*/, '')
    .replace(/(\s[^\s=/>]+)\s*=\s*'([^']*)'/g, '$1="$2"')
    .replace(/<([A-Za-z_][\w.:-]*)((?:\s+[^\s=/>]+="[^"]*")*)\s*><\/\1>/g, '<$1$2/>')
    .replace(/\s+\/>/g, '/>');
}

const NULL_TEXT = '<null>';

async function msCanonical(pool: sql.ConnectionPool, table: string, cols: Col[]): Promise<string[]> {
  const exprs = cols.map((c, i) => `COALESCE(CAST(${c.msCanon(`[${c.name}]`)} AS nvarchar(max)), N'${NULL_TEXT}') AS [c${i}]`);
  const res = await pool.request().query<Record<string, string>>(`SELECT ${exprs.join(', ')} FROM ${table} ORDER BY [id]`);
  return res.recordset.map((r) => cols.map((c, i) => (c.norm && r[`c${i}`] !== NULL_TEXT ? c.norm(r[`c${i}`]!) : r[`c${i}`])).join('|'));
}

async function pgCanonical(db: Client, table: string, cols: Col[]): Promise<string[]> {
  const exprs = cols.map((c, i) => `COALESCE((${c.pgCanon(`"${c.name}"`)})::text, '${NULL_TEXT}') AS c${i}`);
  const res = await db.query<Record<string, string>>(`SELECT ${exprs.join(', ')} FROM ${table} ORDER BY id`);
  return res.rows.map((r) => cols.map((c, i) => (c.norm && r[`c${i}`] !== NULL_TEXT ? c.norm(r[`c${i}`]!) : r[`c${i}`])).join('|'));
}

function digest(rows: string[]): string {
  return createHash('sha256').update(rows.join('\n')).digest('hex');
}

const asDecimal = (c: string): string => `CONVERT(varchar(60), CAST(${c} AS decimal(38,10)))`;

/** SQL Server source table: every type the issue lists. */
const MS_COLS: Col[] = [
  { name: 'id', ms: 'int NOT NULL PRIMARY KEY', pg: '', msCanon: (c) => `CONVERT(varchar(11), ${c})`, pgCanon: (c) => c },
  { name: 'b', ms: 'bit', pg: '', msCanon: (c) => `CASE ${c} WHEN 1 THEN 't' WHEN 0 THEN 'f' END`, pgCanon: (c) => `CASE WHEN ${c} THEN 't' WHEN NOT ${c} THEN 'f' END` },
  { name: 'ti', ms: 'tinyint', pg: '', msCanon: (c) => `CONVERT(varchar(3), ${c})`, pgCanon: (c) => c },
  { name: 'si', ms: 'smallint', pg: '', msCanon: (c) => `CONVERT(varchar(6), ${c})`, pgCanon: (c) => c },
  { name: 'bi', ms: 'bigint', pg: '', msCanon: (c) => `CONVERT(varchar(20), ${c})`, pgCanon: (c) => c },
  { name: 'd', ms: 'decimal(38,10)', pg: '', msCanon: (c) => `CONVERT(varchar(50), ${c})`, pgCanon: (c) => c },
  { name: 'm', ms: 'money', pg: '', msCanon: (c) => `CONVERT(varchar(30), ${c}, 2)`, pgCanon: (c) => c },
  { name: 'sm', ms: 'smallmoney', pg: '', msCanon: (c) => `CONVERT(varchar(30), CAST(${c} AS decimal(10,4)))`, pgCanon: (c) => c },
  { name: 'f', ms: 'float', pg: '', msCanon: asDecimal, pgCanon: (c) => `${c}::numeric(38,10)` },
  { name: 'r', ms: 'real', pg: '', msCanon: (c) => `CONVERT(varchar(60), CAST(CAST(${c} AS float) AS decimal(38,6)))`, pgCanon: (c) => `${c}::float8::numeric(38,6)` },
  { name: 'dt', ms: 'date', pg: '', msCanon: (c) => `CONVERT(varchar(10), ${c}, 23)`, pgCanon: (c) => c },
  { name: 't', ms: 'time(7)', pg: '', msCanon: (c) => `CONVERT(varchar(16), ${c}, 121)`, pgCanon: (c) => c, norm: frac },
  { name: 'dtm', ms: 'datetime', pg: '', msCanon: (c) => `CONVERT(varchar(23), ${c}, 121)`, pgCanon: (c) => c, norm: frac },
  { name: 'sdt', ms: 'smalldatetime', pg: '', msCanon: (c) => `CONVERT(varchar(19), ${c}, 120)`, pgCanon: (c) => c, norm: frac },
  { name: 'dt2', ms: 'datetime2(7)', pg: '', msCanon: (c) => `CONVERT(varchar(27), ${c}, 121)`, pgCanon: (c) => c, norm: frac },
  { name: 'dto', ms: 'datetimeoffset(7)', pg: '', msCanon: (c) => `CONVERT(varchar(34), SWITCHOFFSET(${c}, '+00:00'), 121)`, pgCanon: (c) => c, norm: utc },
  { name: 'ch', ms: 'char(5)', pg: '', msCanon: (c) => c, pgCanon: (c) => `${c}::text || repeat(' ', 5 - octet_length(${c}::text))` },
  { name: 'vc', ms: 'varchar(max)', pg: '', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'nc', ms: 'nchar(4)', pg: '', msCanon: (c) => c, pgCanon: (c) => `rpad(${c}::text, 4)` },
  { name: 'nv', ms: 'nvarchar(max)', pg: '', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'tx', ms: 'text', pg: '', msCanon: (c) => `CAST(${c} AS varchar(max))`, pgCanon: (c) => c },
  { name: 'ntx', ms: 'ntext', pg: '', msCanon: (c) => `CAST(${c} AS nvarchar(max))`, pgCanon: (c) => c },
  { name: 'bn', ms: 'binary(4)', pg: '', msCanon: (c) => `CONVERT(varchar(max), ${c}, 2)`, pgCanon: (c) => `upper(encode(${c}, 'hex'))` },
  { name: 'vb', ms: 'varbinary(max)', pg: '', msCanon: (c) => `CONVERT(varchar(max), ${c}, 2)`, pgCanon: (c) => `upper(encode(${c}, 'hex'))` },
  { name: 'u', ms: 'uniqueidentifier', pg: '', msCanon: (c) => `LOWER(CONVERT(char(36), ${c}))`, pgCanon: (c) => c },
  { name: 'x', ms: 'xml', pg: '', msCanon: (c) => `CAST(${c} AS nvarchar(max))`, pgCanon: (c) => c, norm: xmlNorm },
  { name: 'sv', ms: 'sql_variant', pg: '', msCanon: (c) => `CAST(${c} AS nvarchar(4000))`, pgCanon: (c) => c },
  { name: 'h', ms: 'hierarchyid', pg: '', msCanon: (c) => `${c}.ToString()`, pgCanon: (c) => c },
  { name: 'g', ms: 'geography', pg: '', msCanon: (c) => `${c}.STAsText()`, pgCanon: (c) => `substr(${c}, strpos(${c}, ';') + 1)` },
  { name: 'gm', ms: 'geometry', pg: '', msCanon: (c) => `${c}.STAsText()`, pgCanon: (c) => `substr(${c}, strpos(${c}, ';') + 1)` },
  { name: 'rv', ms: 'rowversion', pg: '', msCanon: (c) => `CONVERT(varchar(max), CAST(${c} AS varbinary(8)), 2)`, pgCanon: (c) => `upper(encode(${c}, 'hex'))` },
];

const MS_INSERT_COLS = MS_COLS.filter((c) => c.name !== 'rv').map((c) => `[${c.name}]`).join(', ');

/** A row of T-SQL literals for every column but rv (generated by the server). */
function msRow(id: number, variant: number): string {
  const v = variant;
  return `(${id}, ${v % 2}, ${v % 256}, ${-v}, ${9_000_000_000_000_000 + v}, 1234567890123456789012345678.01234567${v % 10}9,
    ${-922337203685477 + v}.5807, ${v}.${String(v).padStart(4, '0')}, ${v}.5E-3, ${v}.25, '2024-02-${String((v % 28) + 1).padStart(2, '0')}',
    '23:59:59.12345${v % 10}0', '2024-02-29 13:14:15.${String((v * 10) % 1000).padStart(3, '0')}', '2024-02-29 13:14:00',
    '2024-02-29 13:14:15.12345${v % 10}0', '2024-02-29 13:14:15.12345${v % 10}0 +05:30', 'ab${v % 10}', 'varchar ${v} with ''quote'' and \\ backslash',
    N'é${v % 10}', N'unicode ünï 😀 ${v}' + NCHAR(9) + N'tab', 'text ${v}', N'ntext ${v}', 0x0102030${v % 10},
    0x${randomBytes(20).toString('hex')}, NEWID(), N'<r n="${v}"><c>${v}</c></r>', CAST(${v} AS int), hierarchyid::Parse('/1/${v}/'),
    geography::STGeomFromText('POINT(${v % 90}.5 ${v % 45}.25)', 4326), geometry::STGeomFromText('LINESTRING(0 0, ${v} ${v})', 0))`;
}

/** A row with NULL in every nullable column. */
function msNullRow(id: number): string {
  return `(${id}, ${Array.from({ length: MS_COLS.length - 2 }, () => 'NULL').join(', ')})`;
}

/** PostgreSQL source table for PostgreSQL → SQL Server. */
const PG_COLS: Col[] = [
  { name: 'id', ms: '', pg: 'bigint PRIMARY KEY', msCanon: (c) => `CONVERT(varchar(20), ${c})`, pgCanon: (c) => c },
  { name: 'b', ms: '', pg: 'boolean', msCanon: (c) => `CASE ${c} WHEN 1 THEN 't' WHEN 0 THEN 'f' END`, pgCanon: (c) => `CASE WHEN ${c} THEN 't' WHEN NOT ${c} THEN 'f' END` },
  { name: 'i', ms: '', pg: 'integer', msCanon: (c) => `CONVERT(varchar(11), ${c})`, pgCanon: (c) => c },
  { name: 'n', ms: '', pg: 'numeric(30,6)', msCanon: (c) => `CONVERT(varchar(50), ${c})`, pgCanon: (c) => c },
  { name: 'f', ms: '', pg: 'double precision', msCanon: asDecimal, pgCanon: (c) => `${c}::numeric(38,10)` },
  { name: 't', ms: '', pg: 'text', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'vc', ms: '', pg: 'varchar(20)', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'ts', ms: '', pg: 'timestamp(6)', msCanon: (c) => `CONVERT(varchar(27), ${c}, 121)`, pgCanon: (c) => c, norm: frac },
  { name: 'tz', ms: '', pg: 'timestamptz', msCanon: (c) => `CONVERT(varchar(34), SWITCHOFFSET(${c}, '+00:00'), 121)`, pgCanon: (c) => `${c} AT TIME ZONE 'UTC'`, norm: utc },
  { name: 'd', ms: '', pg: 'date', msCanon: (c) => `CONVERT(varchar(10), ${c}, 23)`, pgCanon: (c) => c },
  { name: 'tm', ms: '', pg: 'time', msCanon: (c) => `CONVERT(varchar(16), ${c}, 121)`, pgCanon: (c) => c, norm: frac },
  { name: 'by', ms: '', pg: 'bytea', msCanon: (c) => `CONVERT(varchar(max), ${c}, 2)`, pgCanon: (c) => `upper(encode(${c}, 'hex'))` },
  { name: 'u', ms: '', pg: 'uuid', msCanon: (c) => `LOWER(CONVERT(char(36), ${c}))`, pgCanon: (c) => c },
  { name: 'j', ms: '', pg: 'jsonb', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'arr', ms: '', pg: 'integer[]', msCanon: (c) => c, pgCanon: (c) => c },
  { name: 'x', ms: '', pg: 'xml', msCanon: (c) => `CAST(${c} AS nvarchar(max))`, pgCanon: (c) => c, norm: xmlNorm },
];

function pgRow(id: number, v: number): string {
  return `(${id}, ${v % 2 === 0}, ${v * 7}, ${v}12345678901234.123456, ${v}.125, E'text ${v} \\\\ tab\\t quote''', 'vc ${v}',
    '2024-03-0${(v % 9) + 1} 10:11:12.12345${v % 10}', '2024-03-01 10:11:12.5+02', '2024-03-0${(v % 9) + 1}', '10:11:12.${v % 10}',
    '\\x0001${(v % 256).toString(16).padStart(2, '0')}', gen_random_uuid(), '{"k": ${v}, "s": "x"}', ARRAY[${v}, ${v + 1}], '<a v="${v}"/>')`;
}

/** The fence a populateTable or syncSession activity takes, once per mirror and scope. */
const fences = new WeakMap<Mirror, Map<string, Fence>>();
async function fenceOf(mirror: Mirror, scope: string): Promise<Fence> {
  const known = fences.get(mirror) ?? new Map<string, Fence>();
  fences.set(mirror, known);
  let fence = known.get(scope);
  if (!fence) {
    fence = await mirror.takeFence(scope, 'mssql test');
    known.set(scope, fence);
  }
  return fence;
}

/** copyIntoShadow with the version and fence a populateTable activity gives. */
async function copyRows(mirror: Mirror, table: TableSchema, rows: Readable, version: Version, opts: { resume?: boolean; chunkBytes: number }) {
  return mirror.copyIntoShadow(table, rows, {
    resume: opts.resume ?? false,
    version,
    chunkBytes: opts.chunkBytes,
    fence: await fenceOf(mirror, `populate:${table.name}`),
    onChunk: () => undefined,
  });
}

async function populate(source: ChangeSource, mirror: Mirror, table: TableSchema): Promise<Version> {
  await mirror.applySchema(table);
  await source.enableTracking(table, WEEK);
  const snap = await source.snapshot();
  try {
    await copyRows(mirror, table, snap.rows(table), snap.version, { chunkBytes: 2048 });
    await mirror.swapInShadow(table, snap.version, snap.fingerprint, await fenceOf(mirror, `populate:${table.name}`));
    return snap.version;
  } finally {
    await snap.close();
  }
}

async function sync(source: ChangeSource, mirror: Mirror, table: TableSchema, from: Version): Promise<{ version: Version; upserts: number; deletes: number }> {
  const snap = await source.snapshot();
  try {
    const r = await mirror.applyChanges(table, snap.changes(table, from), {
      fromVersion: from,
      toVersion: snap.version,
      fingerprint: snap.fingerprint,
      batchBytes: 1024,
      fence: await fenceOf(mirror, 'session'),
    });
    return { version: snap.version, upserts: r.upserts, deletes: r.deletes };
  } finally {
    await snap.close();
  }
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return undefined;
}

async function drain(r: Readable): Promise<string> {
  let s = '';
  for await (const chunk of r) s += String(chunk);
  return s;
}

describe.skipIf(!MSSQL_URL)('SQL Server against a real server (MSSQL_URL)', () => {
  const dbName = `tm_it_${Date.now()}_${randomBytes(3).toString('hex')}`;
  let admin: sql.ConnectionPool;
  let ms: sql.ConnectionPool;
  let msUrl: string;
  let pair: PgPair;
  let pgSource: Client;
  let pgMirror: Client;

  beforeAll(async () => {
    admin = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(MSSQL_URL!))).connect();
    await admin.request().batch(`CREATE DATABASE [${dbName}]`);
    const u = new URL(MSSQL_URL!);
    u.pathname = `/${dbName}`;
    msUrl = u.toString();
    ms = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(msUrl))).connect();
    pair = await startPgPair('mssql');
    const opts = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';
    pgSource = new Client({ connectionString: pair.source.url(), options: opts });
    pgMirror = new Client({ connectionString: pair.mirror.url(), options: opts });
    await pgSource.connect();
    await pgMirror.connect();
  });

  afterAll(async () => {
    await pgSource?.end();
    await pgMirror?.end();
    await pair?.stop();
    await ms?.close();
    if (admin) {
      await admin.request().batch(`ALTER DATABASE [${dbName}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [${dbName}]`).catch(() => undefined);
      await admin.close();
    }
  });

  describe('SQL Server → PostgreSQL', () => {
    let source: MssqlChangeSource;
    let mirror: PgMirror;
    let table: TableSchema;
    let lsn: Version;
    const pgTable = '"ms2pg"."sales.all types"';

    beforeAll(async () => {
      await ms.request().batch(`CREATE SCHEMA [sales];`);
      await ms.request().batch(`CREATE TABLE [sales].[all types] (${MS_COLS.map((c) => `[${c.name}] ${c.ms}`).join(', ')});
        CREATE TABLE [dbo].[no key] (a int);
        INSERT INTO [sales].[all types] (${MS_INSERT_COLS}) VALUES ${Array.from({ length: 40 }, (_, i) => msRow(i + 1, i + 1)).join(',\n')};
        INSERT INTO [sales].[all types] (${MS_INSERT_COLS}) VALUES ${msNullRow(1000)};`);
      source = new MssqlChangeSource({ url: msUrl, tenant: 'ms2pg' });
      mirror = new PgMirror({ url: pair.mirror.url(), schema: 'ms2pg', tenant: 'ms2pg' });
      await mirror.ensureState();
    });

    afterAll(async () => {
      await source?.close();
      await mirror?.close();
    });

    it('lists tables with their logical types, and a table without a primary key as keyless', async () => {
      const { tables, skipped } = await source.listTables(() => true);
      // Without a primary key: listed keyless (mirrored by periodic refresh, Change Tracking needs a key).
      expect(skipped).toEqual([]);
      expect(tables.find((t) => t.name === 'no key')?.primaryKey).toEqual([]);
      const t = tables.find((x) => x.name === 'sales.all types');
      expect(t).toBeDefined();
      table = t!;
      expect(table.primaryKey).toEqual(['id']);
      expect(table.columns.map((c) => c.name)).toEqual(MS_COLS.map((c) => c.name));
      expect(table.columns.find((c) => c.name === 'dto')?.type).toEqual({ kind: 'timestamptz', precision: 7 });
      expect((await source.listTables((n) => n !== 'sales.all types')).tables.map((x) => x.name)).not.toContain('sales.all types');
    });

    it('enables tracking once, reports a stable fingerprint', async () => {
      expect(await source.enableTracking(table, WEEK)).toBe(true);
      expect(await source.enableTracking(table, WEEK)).toBe(false);
      const fp = await fingerprintOf(source);
      expect(fp.database_name).toBe(dbName);
      expect(fp.database_guid).toMatch(/^[0-9a-f-]{36}$/);
      expect(fp.recovery_fork_guid).toMatch(/^[0-9a-f-]{36}$/);
      expect(await fingerprintOf(source)).toEqual(fp);
      const state = await ms.request().query<{ snapshot_isolation_state: number; retention_period: number; retention_period_units: number }>(
        `SELECT d.snapshot_isolation_state, c.retention_period, c.retention_period_units FROM sys.databases d
         JOIN sys.change_tracking_databases c ON c.database_id = d.database_id WHERE d.database_id = DB_ID()`,
      );
      expect(state.recordset[0]).toEqual({ snapshot_isolation_state: 1, retention_period: 7, retention_period_units: 3 });
    });

    it('populates PostgreSQL with every value intact', async () => {
      lsn = await populate(source, mirror, table);
      expect(BigInt(lsn)).toBeGreaterThanOrEqual(0n);
      const expected = await msCanonical(ms, '[sales].[all types]', MS_COLS);
      const actual = await pgCanonical(pgMirror, pgTable, MS_COLS);
      expect(actual.length).toBe(41);
      expect(digest(actual)).toBe(digest(expected));
      const state = (await mirror.readState()).find((s) => s.table === 'sales.all types');
      expect(state?.lsn).toBe(lsn);
      expect(state?.rows).toBe(41);
    });

    it('keeps datetime2(7) rounded to microseconds and drops NUL from text', async () => {
      await ms.request().batch(`INSERT INTO [sales].[all types] ([id], [dt2], [nv]) VALUES (2000, '2024-01-01 00:00:00.9999995', N'a' + NCHAR(0) + N'b')`);
      const r = await sync(source, mirror, table, lsn);
      lsn = r.version;
      const row = await pgMirror.query<{ dt2: string; nv: string }>(`SELECT dt2::text AS dt2, nv FROM ${pgTable} WHERE id = 2000`);
      expect(row.rows[0]).toEqual({ dt2: '2024-01-01 00:00:01', nv: 'ab' });
      await ms.request().batch(`DELETE FROM [sales].[all types] WHERE [id] = 2000`);
      lsn = (await sync(source, mirror, table, lsn)).version;
    });

    it('applies inserts, updates and deletes incrementally', async () => {
      await ms.request().batch(`
        INSERT INTO [sales].[all types] (${MS_INSERT_COLS}) VALUES ${Array.from({ length: 10 }, (_, i) => msRow(100 + i, 50 + i)).join(',\n')};
        UPDATE [sales].[all types] SET [nv] = N'changed ' + CONVERT(nvarchar(10), [id]), [d] = -[d], [dto] = '2030-01-01 00:00:00.5 -03:00' WHERE [id] % 3 = 0;
        DELETE FROM [sales].[all types] WHERE [id] % 5 = 0;
        UPDATE [sales].[all types] SET [vb] = NULL WHERE [id] = 1000;`);
      const r = await sync(source, mirror, table, lsn);
      expect(BigInt(r.version)).toBeGreaterThan(BigInt(lsn));
      expect(r.deletes).toBeGreaterThan(0);
      expect(r.upserts).toBeGreaterThan(0);
      lsn = r.version;
      expect(digest(await pgCanonical(pgMirror, pgTable, MS_COLS))).toBe(digest(await msCanonical(ms, '[sales].[all types]', MS_COLS)));
      // Nothing changed since: an empty cycle still records the version.
      const again = await sync(source, mirror, table, lsn);
      expect(again).toMatchObject({ upserts: 0, deletes: 0 });
    });

    it('resumes a population after the last key the mirror committed', async () => {
      const snap = await source.snapshot();
      try {
        const all = (await drain(snap.rows(table))).split('\n').filter(Boolean);
        const firstTen = all.slice(0, 10).join('\n') + '\n';
        await copyRows(mirror, table, Readable.from([firstTen]), snap.version, { chunkBytes: 1 });
        const lastKey = (await mirror.shadowProgress(table))?.lastKey ?? null;
        expect(lastKey).toEqual([all[9]!.split('\t')[0]]);
        const rest = snap.rows(table, lastKey!);
        const progress = await copyRows(mirror, table, rest, snap.version, { resume: true, chunkBytes: 4096 });
        expect(progress.rows).toBe(all.length);
        await mirror.swapInShadow(table, snap.version, snap.fingerprint, await fenceOf(mirror, `populate:${table.name}`));
        lsn = snap.version;
      } finally {
        await snap.close();
      }
      expect(digest(await pgCanonical(pgMirror, pgTable, MS_COLS))).toBe(digest(await msCanonical(ms, '[sales].[all types]', MS_COLS)));
    });

    it('reports TrackingExpired after TRUNCATE (min valid version raised)', async () => {
      await ms.request().batch(`TRUNCATE TABLE [sales].[all types]`);
      const snap = await source.snapshot();
      try {
        const min = await snap.minValidVersion(table);
        expect(BigInt(min!)).toBeGreaterThan(BigInt(lsn));
        const err = await caught(drain(snap.changes(table, lsn)));
        expect(err).toBeInstanceOf(MirrorError);
        expect((err as MirrorError).type).toBe(FailureType.TrackingExpired);
      } finally {
        await snap.close();
      }
    });
  });

  describe('PostgreSQL → SQL Server', () => {
    let source: PgChangeSource;
    let mirror: MssqlMirror;
    let table: TableSchema;
    let lsn: Version;
    const msTable = '[pg2ms].[items]';

    beforeAll(async () => {
      await pgSource.query(`CREATE TABLE items (${PG_COLS.map((c) => `"${c.name}" ${c.pg}`).join(', ')})`);
      await pgSource.query(`INSERT INTO items VALUES ${Array.from({ length: 30 }, (_, i) => pgRow(i + 1, i + 1)).join(',\n')}`);
      await pgSource.query(`INSERT INTO items (id) VALUES (1000)`);
      source = new PgChangeSource({ url: pair.source.url(), tenant: 'pg2ms' });
      mirror = new MssqlMirror({ url: msUrl, schema: 'pg2ms', tenant: 'pg2ms' });
      await mirror.ensureState();
      await mirror.ensureState(); // idempotent
      table = (await source.listTables((n) => n === 'items')).tables[0]!;
    });

    afterAll(async () => {
      await source?.close();
      await mirror?.close();
    });

    it('creates the table, then reports it unchanged', async () => {
      expect(await mirror.applySchema(table)).toEqual({ outcome: 'created' });
      expect(await mirror.applySchema(table)).toEqual({ outcome: 'unchanged' });
    });

    it('populates SQL Server with every value intact', async () => {
      lsn = await populate(source, mirror, table);
      expect(digest(await msCanonical(ms, msTable, PG_COLS))).toBe(digest(await pgCanonical(pgSource, 'items', PG_COLS)));
      const state = (await mirror.readState()).find((s) => s.table === 'items');
      expect(state).toMatchObject({ lsn, rows: 31 });
      expect(state?.populatedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    });

    it('applies changes in several byte-bounded batches, the LSN only with the last', async () => {
      await pgSource.query(`INSERT INTO items VALUES ${Array.from({ length: 20 }, (_, i) => pgRow(200 + i, 70 + i)).join(',\n')}`);
      await pgSource.query(`UPDATE items SET t = 'upd ' || id, n = -n WHERE id % 4 = 0`);
      await pgSource.query(`DELETE FROM items WHERE id % 7 = 0`);
      const r = await sync(source, mirror, table, lsn);
      expect(r.upserts).toBeGreaterThan(20);
      expect(r.deletes).toBeGreaterThan(0);
      lsn = r.version;
      expect(digest(await msCanonical(ms, msTable, PG_COLS))).toBe(digest(await pgCanonical(pgSource, 'items', PG_COLS)));
      expect((await mirror.readState()).find((s) => s.table === 'items')?.lsn).toBe(lsn);
    });

    it('rejects a value SQL Server cannot hold without moving the LSN', async () => {
      await pgSource.query(`UPDATE items SET f = 'NaN' WHERE id = 1`);
      const err = await caught(sync(source, mirror, table, lsn));
      expect((err as MirrorError).type).toBe(FailureType.MirrorWriteFailed);
      expect((await mirror.readState()).find((s) => s.table === 'items')?.lsn).toBe(lsn);
      await pgSource.query(`UPDATE items SET f = 1.5 WHERE id = 1`);
      lsn = (await sync(source, mirror, table, lsn)).version;
      expect(digest(await msCanonical(ms, msTable, PG_COLS))).toBe(digest(await pgCanonical(pgSource, 'items', PG_COLS)));
    });

    it('alters a compatible change in place and replaces an incompatible table', async () => {
      const wider: TableSchema = { ...table, columns: [...table.columns, { name: 'extra', type: { kind: 'string', length: 10 }, nullable: true }] };
      const altered = await mirror.applySchema(wider);
      expect(altered).toMatchObject({ outcome: 'altered', needsBackfill: true });
      const narrowed: TableSchema = { ...wider, columns: wider.columns.map((c) => (c.name === 'i' ? { ...c, type: { kind: 'int16' } as LogicalType } : c)) };
      expect(await mirror.applySchema(narrowed)).toMatchObject({ outcome: 'incompatible' });
      expect((await mirror.readState()).find((s) => s.table === 'items')).toBeUndefined();
    });

    it('wipes everything it owns', async () => {
      await mirror.applySchema(table);
      await mirror.wipeAll();
      expect(await mirror.readState()).toEqual([]);
      const left = await ms.request().query(`SELECT name FROM sys.tables WHERE schema_id = SCHEMA_ID(N'pg2ms') AND name NOT LIKE N'\\_mirror%' ESCAPE N'\\'`);
      expect(left.recordset).toEqual([]);
    });
  });

  describe('SQL Server → SQL Server', () => {
    it('mirrors a table into another schema of the same server with identical values', async () => {
      await ms.request().batch(`CREATE TABLE [dbo].[copy me] (${MS_COLS.map((c) => `[${c.name}] ${c.ms}`).join(', ')});
        INSERT INTO [dbo].[copy me] (${MS_INSERT_COLS}) VALUES ${Array.from({ length: 15 }, (_, i) => msRow(i + 1, i + 3)).join(',\n')};
        INSERT INTO [dbo].[copy me] (${MS_INSERT_COLS}) VALUES ${msNullRow(999)};`);
      const source = new MssqlChangeSource({ url: msUrl, tenant: 'ms2ms' });
      const mirror = new MssqlMirror({ url: msUrl, schema: 'ms2ms', tenant: 'ms2ms' });
      try {
        await mirror.ensureState();
        const table = (await source.listTables((n) => n === 'copy me')).tables[0]!;
        let lsn = await populate(source, mirror, table);
        await ms.request().batch(`UPDATE [dbo].[copy me] SET [x] = N'<changed/>', [h] = hierarchyid::Parse('/9/') WHERE [id] < 5; DELETE FROM [dbo].[copy me] WHERE [id] = 7;`);
        lsn = (await sync(source, mirror, table, lsn)).version;
        // rowversion becomes binary(8) holding the source's value, so every column compares.
        expect(await msCanonical(ms, '[ms2ms].[copy me]', MS_COLS)).toEqual(await msCanonical(ms, '[dbo].[copy me]', MS_COLS));
        expect(lsn).toMatch(/^\d+$/);
      } finally {
        await source.close();
        await mirror.close();
      }
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  // Issue 13

  describe('PostgreSQL text keys into a case-sensitive mirror database whose collation is not the server\'s', () => {
    const csDb = `${dbName}_cs`;
    let source: PgChangeSource;
    let mirror: MssqlMirror;
    let msCs: sql.ConnectionPool;
    let table: TableSchema;
    let lsn: Version;
    // Compared as JSON of [key, value], sorted here by UTF-16 code units: neither server's collation decides.
    const sorted = (rows: { id: string; v: number }[]): string[] => rows.map((r) => JSON.stringify([r.id, r.v])).sort();
    const msRows = async () => sorted((await msCs.request().query<{ id: string; v: number }>(`SELECT [id], [v] FROM [tkeys].[words]`)).recordset);
    const pgRows = async () => sorted((await pgSource.query<{ id: string; v: number }>(`SELECT id, v FROM words`)).rows);

    beforeAll(async () => {
      const server = (await admin.request().query<{ c: string }>(`SELECT CONVERT(nvarchar(128), SERVERPROPERTY('Collation')) AS c`)).recordset[0]!.c;
      // Case-sensitive, and not the server's (tempdb's) collation, whatever the server's is.
      const collation = server === 'Latin1_General_100_CS_AS' ? 'Japanese_XJIS_140_CS_AS' : 'Latin1_General_100_CS_AS';
      await admin.request().batch(`CREATE DATABASE [${csDb}] COLLATE ${collation}`);
      msCs = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(urlFor(MSSQL_URL!, csDb)))).connect();
      await pgSource.query(`CREATE TABLE words (id text PRIMARY KEY, v integer)`);
      await pgSource.query(`INSERT INTO words VALUES ('a', 1), ('A', 2), ('x', 3), ('ß', 4), ('ss', 5), ($1, 6), ('😀', 7)`, ['k'.repeat(450)]);
      source = new PgChangeSource({ url: pair.source.url(), tenant: 'tkeys' });
      mirror = new MssqlMirror({ url: urlFor(MSSQL_URL!, csDb), schema: 'tkeys', tenant: 'tkeys' });
      await mirror.ensureState();
      table = (await source.listTables((n) => n === 'words')).tables[0]!;
    });

    afterAll(async () => {
      await source?.close();
      await mirror?.close();
      await msCs?.close();
      await dropDatabase(admin, csDb);
    });

    it('creates a bounded, binary-collated key and keeps keys that differ only in case apart', async () => {
      expect(await mirror.applySchema(table)).toEqual({ outcome: 'created' });
      expect(await mirror.applySchema(table)).toEqual({ outcome: 'unchanged' });
      const key = (await msCs.request().query<{ max_length: number; collation_name: string }>(
        `SELECT c.max_length, c.collation_name FROM sys.columns AS c WHERE c.object_id = OBJECT_ID(N'[tkeys].[words]') AND c.name = N'id'`,
      )).recordset[0];
      expect(key).toEqual({ max_length: 900, collation_name: 'Latin1_General_100_BIN2' });
      lsn = await populate(source, mirror, table);
      expect(await msRows()).toEqual(await pgRows());
    });

    it('applies changes through the staging join (no collation conflict with tempdb)', async () => {
      await pgSource.query(`UPDATE words SET v = v + 10 WHERE id IN ('a', 'ss')`);
      await pgSource.query(`DELETE FROM words WHERE id = 'A'`);
      await pgSource.query(`INSERT INTO words VALUES ('b', 8), ('B', 9)`);
      const r = await sync(source, mirror, table, lsn);
      expect(r).toMatchObject({ upserts: 4, deletes: 1 });
      lsn = r.version;
      expect(await msRows()).toEqual(await pgRows());
    });

    it('fails the table, without quoting it, for a key longer than an index key holds; the LSN stays', async () => {
      await pgSource.query(`INSERT INTO words VALUES ($1, 10)`, ['z'.repeat(451)]);
      const err = await caught(sync(source, mirror, table, lsn));
      expect(err).toBeInstanceOf(MirrorError);
      expect((err as MirrorError).type).toBe(FailureType.BadConfig);
      expect((err as MirrorError).message).toContain('451 UTF-16 characters');
      expect((err as MirrorError).message).not.toContain('zzzz');
      expect((await mirror.readState()).find((s) => s.table === 'words')?.lsn).toBe(lsn);
      await pgSource.query(`DELETE FROM words WHERE length(id) = 451`);
      lsn = (await sync(source, mirror, table, lsn)).version;
    });

    it("reports keys equal only by SQL Server's trailing-space rule instead of replacing one with the other", async () => {
      await pgSource.query(`INSERT INTO words VALUES ('x ', 11)`);
      const err = await caught(sync(source, mirror, table, lsn));
      expect((err as MirrorError).type).toBe(FailureType.BadConfig);
      expect((err as MirrorError).message).toContain('trailing spaces');
      const x = await msCs.request().query<{ v: number }>(`SELECT [v] FROM [tkeys].[words] WHERE [id] = N'x' AND DATALENGTH([id]) = 2`);
      expect(x.recordset).toEqual([{ v: 3 }]);
      await pgSource.query(`DELETE FROM words WHERE id = 'x '`);
      lsn = (await sync(source, mirror, table, lsn)).version;
      expect(await msRows()).toEqual(await pgRows());
    });
  });

  describe('a login with only SELECT and VIEW CHANGE TRACKING, and a RESTORE … WITH REPLACE over its database', () => {
    const lpDb = `${dbName}_lp`;
    const login = { user: `tm_reader_${randomBytes(3).toString('hex')}`, password: `Rd-${randomBytes(12).toString('hex')}!a` };
    let lp: sql.ConnectionPool;
    let limited: MssqlChangeSource;
    let privileged: MssqlChangeSource;
    let mirror: PgMirror;
    let table: TableSchema;
    let lsn: Version;
    let recorded: SourceFingerprint;
    let recordedLimited: SourceFingerprint;

    beforeAll(async () => {
      await admin.request().batch(`CREATE DATABASE [${lpDb}];
        ALTER DATABASE [${lpDb}] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON);
        ALTER DATABASE [${lpDb}] SET ALLOW_SNAPSHOT_ISOLATION ON;
        CREATE LOGIN [${login.user}] WITH PASSWORD = N'${login.password}', CHECK_POLICY = OFF;`);
      lp = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(urlFor(MSSQL_URL!, lpDb)))).connect();
      await lp.request().batch(`CREATE TABLE [dbo].[accounts] ([id] int NOT NULL PRIMARY KEY, [name] nvarchar(50) NULL);
        INSERT INTO [dbo].[accounts] VALUES (1, N'one'), (2, N'two'), (3, N'three');
        ALTER TABLE [dbo].[accounts] ENABLE CHANGE_TRACKING;
        CREATE USER [${login.user}] FOR LOGIN [${login.user}];
        GRANT SELECT, VIEW CHANGE TRACKING ON [dbo].[accounts] TO [${login.user}];`);
      limited = new MssqlChangeSource({ url: urlFor(MSSQL_URL!, lpDb, login), tenant: 'lp' });
      privileged = new MssqlChangeSource({ url: urlFor(MSSQL_URL!, lpDb), tenant: 'lp' });
      mirror = new PgMirror({ url: pair.mirror.url(), schema: 'lp', tenant: 'lp' });
      await mirror.ensureState();
      table = (await limited.listTables(() => true)).tables.find((t) => t.name === 'accounts')!;
    });

    afterAll(async () => {
      await limited?.close();
      await privileged?.close();
      await mirror?.close();
      await lp?.close();
      await dropDatabase(admin, lpDb);
      await admin.request().batch(`DROP LOGIN [${login.user}]`).catch(() => undefined);
    });

    it('uses tracking as a DBA set it up: no ALTER DATABASE, a warning for the shorter retention', async () => {
      expect(await limited.enableTracking(table, WEEK)).toBe(false);
      expect(limited.warnings).toEqual([expect.stringContaining('is 2880 minutes, shorter than the tenant\'s 10080')]);
      const retention = await lp.request().query<{ retention_period: number }>(`SELECT retention_period FROM sys.change_tracking_databases WHERE database_id = DB_ID()`);
      expect(retention.recordset[0]?.retention_period).toBe(2);
    });

    it('opens snapshots without VIEW ANY DATABASE (recovery components unavailable, create_date known)', async () => {
      const snap = await limited.snapshot();
      try {
        expect(snap.fingerprint).toMatchObject({ database_name: lpDb, database_guid: 'unavailable', recovery_fork_guid: 'unavailable' });
        expect(snap.fingerprint.create_date).toMatch(/^\d{4}-\d\d-\d\dT/);
        expect(await snap.tableFingerprint(table)).toMatchObject({ 'table.trackingBegin': expect.stringMatching(/^\d+$/) });
      } finally {
        await snap.close();
      }
    });

    it('populates and syncs with the limited login', async () => {
      await mirror.applySchema(table);
      ({ lsn, fingerprint: recordedLimited } = await populateRecording(limited, mirror, table));
      recorded = (await facts(privileged, table)).fingerprint;
      await lp.request().batch(`UPDATE [dbo].[accounts] SET [name] = N'uno' WHERE [id] = 1`);
      const r = await sync(limited, mirror, table, lsn);
      expect(r.upserts).toBe(1);
      lsn = r.version;
      const rows = await pgMirror.query<{ id: number; name: string }>(`SELECT id, name FROM "lp"."accounts" ORDER BY id`);
      expect(rows.rows).toEqual([{ id: 1, name: 'uno' }, { id: 2, name: 'two' }, { id: 3, name: 'three' }]);
    });

    it('detects RESTORE … WITH REPLACE after new writes passed the LSN: by create_date for the limited login, and the recovery fork', async () => {
      const backup = `${lpDb}.bak`;
      await admin.request().batch(`DECLARE @p nvarchar(4000) = CAST(SERVERPROPERTY('InstanceDefaultBackupPath') AS nvarchar(4000)) + N'/${backup}';
        BACKUP DATABASE [${lpDb}] TO DISK = @p WITH INIT, COPY_ONLY;`);
      await lp.request().batch(`UPDATE [dbo].[accounts] SET [name] = N'after backup' WHERE [id] = 2`);
      lsn = (await sync(limited, mirror, table, lsn)).version;
      await limited.close();
      await privileged.close();
      await lp.close();
      await admin.request().batch(`DECLARE @p nvarchar(4000) = CAST(SERVERPROPERTY('InstanceDefaultBackupPath') AS nvarchar(4000)) + N'/${backup}';
        ALTER DATABASE [${lpDb}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE;
        RESTORE DATABASE [${lpDb}] FROM DISK = @p WITH REPLACE;
        ALTER DATABASE [${lpDb}] SET MULTI_USER;`);
      lp = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(urlFor(MSSQL_URL!, lpDb)))).connect();
      // Push the restored version past the mirror's LSN, so the version rule alone sees nothing.
      for (let i = 0; i < 5; i++) await lp.request().batch(`UPDATE [dbo].[accounts] SET [name] = N'rewrite ${i}' WHERE [id] = 3`);
      limited = new MssqlChangeSource({ url: urlFor(MSSQL_URL!, lpDb, login), tenant: 'lp' });
      privileged = new MssqlChangeSource({ url: urlFor(MSSQL_URL!, lpDb), tenant: 'lp' });
      const seenLimited = await facts(limited, table);
      expect(BigInt(seenLimited.sourceVersion)).toBeGreaterThanOrEqual(BigInt(lsn));
      const byLimited = continuityBreak(lsn, recordedLimited, seenLimited);
      expect(byLimited?.type).toBe(FailureType.SourceRestored);
      expect(byLimited?.detail).toContain('create_date');
      const byPrivileged = continuityBreak(lsn, recorded, await facts(privileged, table));
      expect(byPrivileged?.type).toBe(FailureType.SourceRestored);
      expect(byPrivileged?.detail).toContain('recovery_fork_guid');
    });

    it('without VIEW CHANGE TRACKING fails AuthFailed naming the grant', async () => {
      await lp.request().batch(`REVOKE VIEW CHANGE TRACKING ON [dbo].[accounts] FROM [${login.user}]`);
      const snap = await limited.snapshot();
      try {
        const err = await caught(snap.minValidVersion(table));
        expect((err as MirrorError).type).toBe(FailureType.AuthFailed);
        expect((err as MirrorError).message).toContain('GRANT VIEW CHANGE TRACKING ON [dbo].[accounts]');
      } finally {
        await snap.close();
      }
    });
  });

  describe('a datetime composite key resumed mid-population (SQL Server → PostgreSQL)', () => {
    let source: MssqlChangeSource;
    let mirror: PgMirror;
    let table: TableSchema;

    beforeAll(async () => {
      // 3 datetime values × 10 ids; .997 is stored as .99666…, which a datetime2(3) comparison puts after the row.
      const values = ['2024-01-01T00:00:00.997', '2024-01-01T00:00:01.003', '2024-01-01T00:00:01.007'];
      await ms.request().batch(`CREATE TABLE [dbo].[ticks] ([at] datetime NOT NULL, [id] int NOT NULL, [v] nvarchar(20) NULL, PRIMARY KEY ([at], [id]));
        INSERT INTO [dbo].[ticks] VALUES ${values.flatMap((at) => Array.from({ length: 10 }, (_, i) => `('${at}', ${i + 1}, N'${at.slice(-3)}-${i + 1}')`)).join(', ')};`);
      source = new MssqlChangeSource({ url: msUrl, tenant: 'ticks' });
      mirror = new PgMirror({ url: pair.mirror.url(), schema: 'ticks', tenant: 'ticks' });
      await mirror.ensureState();
      table = (await source.listTables((n) => n === 'ticks')).tables[0]!;
      await mirror.applySchema(table);
      await source.enableTracking(table, WEEK);
    });

    afterAll(async () => {
      await source?.close();
      await mirror?.close();
    });

    it('continues after the fifth row of the first datetime value and copies every row once', async () => {
      const snap = await source.snapshot();
      try {
        const all = (await drain(snap.rows(table))).split('\n').filter(Boolean);
        expect(all).toHaveLength(30);
        await copyRows(mirror, table, Readable.from([all.slice(0, 5).join('\n') + '\n']), snap.version, { chunkBytes: 1 });
        const lastKey = (await mirror.shadowProgress(table))?.lastKey ?? null;
        expect(lastKey).toEqual(['2024-01-01 00:00:00.997', '5']);
        // A new process: the declared types are read again for the resume.
        const fresh = new MssqlChangeSource({ url: msUrl, tenant: 'ticks' });
        const again = await fresh.snapshot();
        try {
          const rest = (await drain(again.rows(table, lastKey!))).split('\n').filter(Boolean);
          expect(rest).toEqual(all.slice(5));
          const progress = await copyRows(mirror, table, Readable.from([rest.join('\n') + '\n']), snap.version, { resume: true, chunkBytes: 4096 });
          expect(progress.rows).toBe(30);
        } finally {
          await again.close();
          await fresh.close();
        }
        await mirror.swapInShadow(table, snap.version, await snap.tableFingerprint(table), await fenceOf(mirror, `populate:${table.name}`));
      } finally {
        await snap.close();
      }
      const n = await pgMirror.query<{ n: string }>(`SELECT count(DISTINCT (at, id))::text AS n FROM "ticks"."ticks"`);
      expect(n.rows[0]?.n).toBe('30');
    });
  });

  describe('a population on an idle database, then tracking disabled and enabled again while idle', () => {
    const idleDb = `${dbName}_idle`;
    let idle: sql.ConnectionPool;
    let source: MssqlChangeSource;
    let mirror: PgMirror;
    let table: TableSchema;
    let lsn: Version;
    let recorded: SourceFingerprint;

    beforeAll(async () => {
      await admin.request().batch(`CREATE DATABASE [${idleDb}]`);
      idle = await new sql.ConnectionPool(toMssqlConfig(parseMssqlUrl(urlFor(MSSQL_URL!, idleDb)))).connect();
      await idle.request().batch(`CREATE TABLE [dbo].[calm] ([id] int NOT NULL PRIMARY KEY, [v] int NULL);
        INSERT INTO [dbo].[calm] VALUES (1, 1), (2, 2);`);
      source = new MssqlChangeSource({ url: urlFor(MSSQL_URL!, idleDb), tenant: 'idle' });
      mirror = new PgMirror({ url: pair.mirror.url(), schema: 'idle', tenant: 'idle' });
      await mirror.ensureState();
      table = (await source.listTables(() => true)).tables[0]!;
    });

    afterAll(async () => {
      await source?.close();
      await mirror?.close();
      await idle?.close();
      await dropDatabase(admin, idleDb);
    });

    it('populates once: the version covers the min valid version, and the next cycle continues (no loop)', async () => {
      expect(await source.enableTracking(table, WEEK)).toBe(true);
      const before = await facts(source, table);
      // What populateTable requires before it starts (activities/populate.ts assertTrackingCovers).
      expect(BigInt(before.minValidVersion!)).toBeLessThanOrEqual(BigInt(before.sourceVersion));
      await mirror.applySchema(table);
      ({ lsn, fingerprint: recorded } = await populateRecording(source, mirror, table));
      const after = await facts(source, table);
      expect(after.sourceVersion).toBe(lsn);
      expect(continuityBreak(lsn, recorded, after)).toBeNull();
      expect(await sync(source, mirror, table, lsn)).toMatchObject({ version: lsn, upserts: 0, deletes: 0 });
    });

    it('reads tracking re-enabled meanwhile as expired, although min valid version still equals the LSN', async () => {
      await idle.request().batch(`ALTER TABLE [dbo].[calm] DISABLE CHANGE_TRACKING;
        UPDATE [dbo].[calm] SET [v] = 20 WHERE [id] = 2;`);
      await source.enableTracking(table, WEEK);
      const now = await facts(source, table);
      const broken = continuityBreak(lsn, recorded, now);
      expect(broken?.type).toBe(FailureType.TrackingExpired);
      expect(broken?.detail).toMatch(/table\./);
    });
  });
});

async function fingerprintOf(src: MssqlChangeSource) {
  const snap = await src.snapshot();
  try {
    return snap.fingerprint;
  } finally {
    await snap.close();
  }
}


/** The URL of another database on the same server (optionally as another login). */
function urlFor(base: string, database: string, login?: { user: string; password: string }): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  if (login) {
    u.username = encodeURIComponent(login.user);
    u.password = encodeURIComponent(login.password);
  }
  return u.toString();
}

async function dropDatabase(admin: sql.ConnectionPool, name: string): Promise<void> {
  await admin.request().batch(`IF DB_ID(N'${name}') IS NOT NULL BEGIN ALTER DATABASE [${name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [${name}]; END`).catch(() => undefined);
}

/** What the workflow's continuity rule is given for one table (activities/decide.ts continuityBreak), read now. */
async function facts(src: ChangeSource, table: TableSchema): Promise<{ sourceVersion: Version; fingerprint: SourceFingerprint; minValidVersion: Version | null }> {
  const snap = await src.snapshot();
  try {
    return { sourceVersion: snap.version, minValidVersion: await snap.minValidVersion(table), fingerprint: await snap.tableFingerprint(table) };
  } finally {
    await snap.close();
  }
}

/** A population as populateTable records it: the table fingerprint beside the LSN. */
async function populateRecording(source: ChangeSource, mirror: Mirror, table: TableSchema): Promise<{ lsn: Version; fingerprint: SourceFingerprint }> {
  const snap = await source.snapshot();
  try {
    await copyRows(mirror, table, snap.rows(table), snap.version, { chunkBytes: 2048 });
    const fingerprint = await snap.tableFingerprint(table);
    await mirror.swapInShadow(table, snap.version, fingerprint, await fenceOf(mirror, `populate:${table.name}`));
    return { lsn: snap.version, fingerprint };
  } finally {
    await snap.close();
  }
}
