/**
 * T-SQL for comparing a table between a SQL Server side and the other side (tenant-mirror verify), range by range.
 * Pure builders; every identifier through quoteMssql, every value a parameter.
 *
 * SQL Server computes the `canonical` digest form only: its text forms of values are not PostgreSQL's, so a range's
 * rows are read as strings (readExpr, as the row stream reads them) and hashed by tenant-mirror. One statement per
 * range, so each is one index range seek.
 *
 * Key order must be the one a PostgreSQL side uses (see src/postgres/compare-sql.ts): keys compared by value,
 * except strings and types kept by their text, compared as nvarchar in a binary collation (code point order for
 * the Basic Multilingual Plane; UTF-16 code unit order puts characters beyond it before U+E000–U+FFFF, where
 * PostgreSQL's "C" order does not — such keys only cost narrowing, matching is by key), and uniqueidentifier,
 * whose own order (last group first) is not its text's: compared as its lower-case text.
 */
import type { LogicalType, TableSchema } from '../core/types';
import { comparedAsText } from '../core/key-ranges';
import { keyValueExpr } from './snapshot';
import { col, keyColumns, q, readExpr } from './tsql';
import { KEY_COLLATION } from './mirror-keys';

/** A key column's declared type, for comparing a parameter in exactly its type (snapshot.ts keyValueExpr). */
export type DeclaredType = (column: string) => string | undefined;

/** Where the rows are: the table (as `[schema].[table]`) and the shape they are read in there. */
export interface MssqlCompareTarget {
  relation: string;
  table: TableSchema;
  declared: DeclaredType;
}

/** A key column in comparison order. */
export function orderExpr(type: LogicalType, column: string): string {
  if (type.kind === 'uuid') return `LOWER(CONVERT(char(36), ${column})) COLLATE ${KEY_COLLATION}`;
  if (comparedAsText(type)) return `CAST(${readExpr(type, column)} AS nvarchar(4000)) COLLATE ${KEY_COLLATION}`;
  return column;
}

/** A key value (a parameter or an OPENJSON column holding copyFieldToMssql text) in the same order. */
export function orderValue(type: LogicalType, value: string, declared: string | undefined): string {
  if (type.kind === 'uuid') return `LOWER(CAST(${value} AS nvarchar(36))) COLLATE ${KEY_COLLATION}`;
  if (comparedAsText(type)) return `CAST(${value} AS nvarchar(4000)) COLLATE ${KEY_COLLATION}`;
  return keyValueExpr(type, value, declared);
}

/**
 * "key > (values)" in comparison order, T-SQL having no row comparison: k0 > v0 OR (k0 = v0 AND (k1 > v1 OR …)).
 * `value(i)` is the i-th key value expression (a parameter name).
 */
export function keyAbove(t: MssqlCompareTarget, value: (i: number) => string): string {
  const keys = keyColumns(t.table);
  const k = (i: number): string => orderExpr(keys[i]!.type, col('t', keys[i]!.name));
  const v = (i: number): string => orderValue(keys[i]!.type, value(i), t.declared(keys[i]!.name));
  const build = (i: number): string => (i === keys.length - 1 ? `${k(i)} > ${v(i)}` : `(${k(i)} > ${v(i)} OR (${k(i)} = ${v(i)} AND ${build(i + 1)}))`);
  return build(0);
}

export interface RangeShape {
  /** A lower bound as parameters @a0..@an (keys above it). */
  after: boolean;
  /** An upper bound as parameters @b0..@bn (keys up to it). */
  upTo: boolean;
  /** Keys to leave out, as @exclude: a JSON array of key arrays (copyFieldToMssql text). */
  exclude: boolean;
}

/** The WHERE clause of one range (1=1 for the whole table). */
export function rangeWhere(t: MssqlCompareTarget, shape: RangeShape): string {
  const parts: string[] = [];
  if (shape.after) parts.push(keyAbove(t, (i) => `@a${i}`));
  // Keys are NOT NULL, so NOT (key > bound) is exactly key <= bound.
  if (shape.upTo) parts.push(`NOT (${keyAbove(t, (i) => `@b${i}`)})`);
  if (shape.exclude) parts.push(excluded(t));
  return parts.length ? parts.join('\n  AND ') : '1 = 1';
}

function excluded(t: MssqlCompareTarget): string {
  const keys = keyColumns(t.table);
  const columns = keys.map((_k, i) => `${q(`k${i}`)} nvarchar(4000) '$[${i}]'`).join(', ');
  const match = keys
    .map((k, i) => `${orderExpr(k.type, col('t', k.name))} = ${orderValue(k.type, `x.${q(`k${i}`)}`, t.declared(k.name))}`)
    .join(' AND ');
  return `NOT EXISTS (SELECT 1 FROM OPENJSON(@exclude) WITH (${columns}) AS x WHERE ${match})`;
}

/** Every row of one range, each column read as a string (c0..cn), as the row stream reads it. */
export function rangeRowsSql(t: MssqlCompareTarget, shape: RangeShape): string {
  const select = t.table.columns.map((c, i) => `${readExpr(c.type, col('t', c.name))} AS ${q(`c${i}`)}`).join(',\n  ');
  return `SELECT ${select}\nFROM ${t.relation} AS t\nWHERE ${rangeWhere(t, shape)}`;
}

/** Rows in one range (n, as text: COUNT_BIG does not fit a JS number in general). */
export function rangeCountSql(t: MssqlCompareTarget, shape: Omit<RangeShape, 'exclude'>): string {
  return `SELECT CONVERT(varchar(20), COUNT_BIG(*)) AS n FROM ${t.relation} AS t WHERE ${rangeWhere(t, { ...shape, exclude: false })}`;
}

/** The keys (k0..kn read as strings) of every @step-th row of one range of @rows rows, the last row excluded, in order. */
export function splitPointsSql(t: MssqlCompareTarget, shape: Omit<RangeShape, 'exclude'>): string {
  const keys = keyColumns(t.table);
  const select = keys.map((k, i) => `${readExpr(k.type, col('t', k.name))} AS ${q(`k${i}`)}`).join(', ');
  const order = keys.map((k) => orderExpr(k.type, col('t', k.name))).join(', ');
  const outer = keys.map((_k, i) => `s.${q(`k${i}`)}`).join(', ');
  return `SELECT ${outer} FROM (SELECT ${select}, ROW_NUMBER() OVER (ORDER BY ${order}) AS [rn]
  FROM ${t.relation} AS t WHERE ${rangeWhere(t, { ...shape, exclude: false })}) AS s
WHERE s.[rn] % @step = 0 AND s.[rn] < @rows
ORDER BY s.[rn]`;
}
