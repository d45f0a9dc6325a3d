/**
 * SQL for comparing a table between a PostgreSQL side and the other side (tenant-mirror verify), range by range.
 * Pure builders, the same for a source and a mirror: a `PgCompareSide` says where the rows are and how a column
 * reads as the mirror stores it.
 *
 * Key order: keys are compared by value, and keys whose mirror copy is text (strings, enums, types stored by their
 * text form) as text in `COLLATE "C"` (code point order), on both sides, whatever the databases' collations: a
 * range is then the same set of keys on both sides. Rows are assigned to ranges in one scan, by a binary search
 * over the ranges' bounds (src/core/key-ranges.ts); a few ranges are also the WHERE clause (index ranges), many
 * only their envelope.
 *
 * Values are bind parameters, except in COPY (which takes none), where they become literals through literalPg.
 */
import { bucketExpression, comparedAsText, segmentsOf } from '../core/key-ranges';
import { literalPg, quotePg } from '../core/identifiers';
import type { ColumnSchema, KeyRange, KeyValues, LogicalType, TableSchema } from '../core/types';
import { FailureType, MirrorError } from '../core/errors';
import { qualified } from './mirror-sql';
import { qualifiedTable } from './tracking';
import { columnExpr, logicalToPgType } from './types';

/** Where a comparison reads a table, and how each column reads on that side. The table is aliased `t`. */
export interface PgCompareSide {
  relation: string;
  /** The column as the mirror stores it (what row hashes and key order are computed from). */
  stored(column: ColumnSchema): string;
  /** The column as the row stream sends it (COPY text). */
  wire(column: ColumnSchema): string;
}

/** A source table: values cast to the type the mirror stores them in (money as numeric(19,4), enums as text). */
export function sourceSide(table: TableSchema): PgCompareSide {
  const col = (c: ColumnSchema): string => columnExpr(`t.${quotePg(c.name)}`, c.type);
  return {
    relation: qualifiedTable(table),
    // A native type keeps its own text form, whether the mirror has the type or stores that text.
    stored: (c) => (hasNative(c.type) ? `t.${quotePg(c.name)}` : `(${col(c)})::${logicalToPgType(c.type)}`),
    wire: col,
  };
}

/** A mirror table: its columns as they are. */
export function mirrorSide(schema: string, relation: string): PgCompareSide {
  const col = (c: ColumnSchema): string => `t.${quotePg(c.name)}`;
  return { relation: qualified(schema, relation), stored: col, wire: col };
}

function hasNative(type: LogicalType): boolean {
  return type.kind === 'native' || (type.kind === 'array' && hasNative(type.element));
}

/** Collects the values of one statement: as bind parameters ($n), or inline as literals (for COPY). */
export class PgParams {
  readonly values: unknown[] = [];
  constructor(private readonly inline: boolean) {}

  text(value: string): string {
    if (this.inline) return `${literalPg(value)}::text`;
    this.values.push(value);
    return `$${this.values.length}::text`;
  }

  textArray(values: string[]): string {
    if (this.inline) return `${literalPg(arrayLiteral(values))}::text[]`;
    this.values.push(values);
    return `$${this.values.length}::text[]`;
  }

  number(value: number): string {
    if (this.inline) return String(Math.trunc(value));
    this.values.push(value);
    return `$${this.values.length}::int8`;
  }
}

/** `{"a","b\"c"}`: a text[] literal (every element quoted, so no value is read as NULL or split). */
export function arrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function keyColumns(table: TableSchema): ColumnSchema[] {
  return table.primaryKey.map((k) => {
    const c = table.columns.find((x) => x.name === k);
    if (!c) throw new MirrorError(FailureType.BadConfig, `key column ${JSON.stringify(k)} is not a column of the table`, { table: table.name });
    return c;
  });
}

/** A key column in comparison order. */
function keyExpr(side: PgCompareSide, c: ColumnSchema): string {
  return comparedAsText(c.type) ? `(${side.stored(c)})::text COLLATE "C"` : side.stored(c);
}

/** A key value (a text expression: a parameter, an unnested array element) in the same order as keyExpr. */
function keyValue(c: ColumnSchema, text: string): string {
  if (!comparedAsText(c.type)) return `(${text})::${logicalToPgType(c.type)}`;
  // character(n) reads as text without its padding; a value from a COPY line still has it.
  if (c.type.kind === 'string' && c.type.fixed) return `((${text})::${logicalToPgType(c.type)})::text COLLATE "C"`;
  return `(${text}) COLLATE "C"`;
}

/** `key op bound` as a row comparison (lexicographic), or a plain comparison for a one-column key. */
function compareKey(side: PgCompareSide, table: TableSchema, op: '>' | '<=', bound: KeyValues, params: PgParams): string {
  const cols = keyColumns(table);
  if (bound.length !== cols.length) {
    throw new MirrorError(FailureType.BadConfig, `a key bound has ${bound.length} values, the key ${cols.length}`, { table: table.name });
  }
  const left = cols.map((c) => keyExpr(side, c));
  const right = cols.map((c, i) => {
    const v = bound[i];
    if (v === null || v === undefined) throw new MirrorError(FailureType.BadConfig, 'a key bound contains NULL', { table: table.name });
    return keyValue(c, params.text(v));
  });
  return cols.length === 1 ? `${left[0]} ${op} ${right[0]}` : `(${left.join(', ')}) ${op} (${right.join(', ')})`;
}

export function rangePredicate(side: PgCompareSide, table: TableSchema, range: KeyRange, params: PgParams): string {
  const parts: string[] = [];
  if (range.after) parts.push(compareKey(side, table, '>', range.after, params));
  if (range.upTo) parts.push(compareKey(side, table, '<=', range.upTo, params));
  return parts.length ? parts.join(' AND ') : 'true';
}

/** A few ranges are the WHERE clause itself (so an index can serve them); many, only their envelope. */
const OR_RANGES = 16;

function whereClause(side: PgCompareSide, table: TableSchema, ranges: KeyRange[], exclude: KeyValues[], params: PgParams): string {
  if (ranges.length === 0) return 'false';
  const scope =
    ranges.length <= OR_RANGES
      ? ranges.map((r) => `(${rangePredicate(side, table, r, params)})`).join(' OR ')
      : rangePredicate(side, table, { ...(ranges[0]!.after ? { after: ranges[0]!.after } : {}), ...(ranges[ranges.length - 1]!.upTo ? { upTo: ranges[ranges.length - 1]!.upTo } : {}) }, params);
  return exclude.length ? `(${scope}) AND ${excluded(side, table, exclude, params)}` : scope;
}

/** Leaves out the listed keys: an anti-join against the unnested key columns. */
function excluded(side: PgCompareSide, table: TableSchema, keys: KeyValues[], params: PgParams): string {
  const cols = keyColumns(table);
  const arrays = cols.map((_c, i) => params.textArray(keys.map((k) => k[i] ?? '')));
  const names = cols.map((_c, i) => quotePg(`k${i}`));
  const match = cols.map((c, i) => `${keyExpr(side, c)} = ${keyValue(c, `x.${names[i]}`)}`).join(' AND ');
  return `NOT EXISTS (SELECT 1 FROM unnest(${arrays.join(', ')}) AS x(${names.join(', ')}) WHERE ${match})`;
}

/** The index of the range a row falls in (NULL: in none), as one expression. */
function bucket(side: PgCompareSide, table: TableSchema, ranges: KeyRange[], params: PgParams): string {
  return bucketExpression(
    segmentsOf(ranges),
    (bound) => compareKey(side, table, '<=', bound, params),
    (range) => (range === null ? 'NULL::int' : String(range)),
  );
}

/** The row's hash for the `pg-hashtext` form: of its record text, every column as the mirror stores it. */
function rowHash(side: PgCompareSide, table: TableSchema): string {
  return `pg_catalog.hashtextextended(ROW(${table.columns.map((c) => side.stored(c)).join(', ')})::text, 0)`;
}

export interface Statement {
  text: string;
  values: unknown[];
}

/** Rows (b: range index, rows, sum) of the ranges that have any; `pg-hashtext` form. */
export function digestsSql(side: PgCompareSide, table: TableSchema, ranges: KeyRange[], exclude: KeyValues[]): Statement {
  const p = new PgParams(false);
  const b = bucket(side, table, ranges, p);
  const where = whereClause(side, table, ranges, exclude, p);
  return {
    text:
      `SELECT s.b, count(*)::text AS rows, coalesce(sum(s.h), 0)::text AS sum ` +
      `FROM (SELECT ${b} AS b, ${rowHash(side, table)} AS h FROM ${side.relation} AS t WHERE ${where}) s ` +
      `WHERE s.b IS NOT NULL GROUP BY s.b`,
    values: p.values,
  };
}

/** Key (k0..kn as text) and hash (h) of every row in the ranges; `pg-hashtext` form. */
export function rowHashesSql(side: PgCompareSide, table: TableSchema, ranges: KeyRange[], exclude: KeyValues[]): Statement {
  const p = new PgParams(false);
  const b = bucket(side, table, ranges, p);
  const where = whereClause(side, table, ranges, exclude, p);
  const keys = keyColumns(table).map((c, i) => `(${side.stored(c)})::text AS ${quotePg(`k${i}`)}`);
  return {
    text:
      `SELECT s.* FROM (SELECT ${b} AS b, ${[...keys, `${rowHash(side, table)}::text AS h`].join(', ')} ` +
      `FROM ${side.relation} AS t WHERE ${where}) s WHERE s.b IS NOT NULL`,
    values: p.values,
  };
}

/** COPY of every row in the ranges, as the row stream sends it, each line led by its range index; `canonical` form. */
export function rangeRowsCopySql(side: PgCompareSide, table: TableSchema, ranges: KeyRange[], exclude: KeyValues[]): string {
  const p = new PgParams(true);
  const b = bucket(side, table, ranges, p);
  const where = whereClause(side, table, ranges, exclude, p);
  const cols = table.columns.map((c, i) => `${side.wire(c)} AS ${quotePg(`c${i}`)}`);
  return `COPY (SELECT s.* FROM (SELECT ${[`${b} AS b`, ...cols].join(', ')} FROM ${side.relation} AS t WHERE ${where}) s WHERE s.b IS NOT NULL) TO STDOUT`;
}

/** Rows in one range (n). */
export function countSql(side: PgCompareSide, table: TableSchema, range: KeyRange): Statement {
  const p = new PgParams(false);
  return { text: `SELECT count(*)::text AS n FROM ${side.relation} AS t WHERE ${rangePredicate(side, table, range, p)}`, values: p.values };
}

/** The keys (k0..kn as text) of every `step`-th row of a range of `rows` rows, the last row excluded, in order. */
export function splitPointsSql(side: PgCompareSide, table: TableSchema, range: KeyRange, step: number, rows: number): Statement {
  const p = new PgParams(false);
  const cols = keyColumns(table);
  const keys = cols.map((c, i) => `(${side.stored(c)})::text AS ${quotePg(`k${i}`)}`);
  const order = cols.map((c) => keyExpr(side, c)).join(', ');
  const where = rangePredicate(side, table, range, p);
  const stepParam = p.number(step);
  const rowsParam = p.number(rows);
  return {
    text:
      `SELECT ${cols.map((_c, i) => `s.${quotePg(`k${i}`)}`).join(', ')} FROM (SELECT ${keys.join(', ')}, row_number() OVER (ORDER BY ${order}) AS rn ` +
      `FROM ${side.relation} AS t WHERE ${where}) s WHERE s.rn % ${stepParam} = 0 AND s.rn < ${rowsParam} ORDER BY s.rn`,
    values: p.values,
  };
}
