/**
 * Primary key columns of a SQL Server mirror table. SQL Server cannot index nvarchar(max) / varbinary(max), and a
 * clustered index key (the mirror's primary key) holds at most 900 bytes per row (1700 for a nonclustered one;
 * the mirror creates none). A PostgreSQL `text` or `bytea` key has no such bound, so the mirror declares every
 * variable-length key column bounded to what the key can hold beside its fixed-width columns, and checks each
 * row's key before writing it: a key that cannot fit fails its table with a typed reason instead of a driver
 * error that quotes the value.
 *
 * String keys get a binary collation: PostgreSQL compares keys by their characters, so 'a' and 'A' are two rows
 * there and must be two rows in the mirror, whatever the mirror database's (often case-insensitive) collation.
 * SQL Server ignores trailing spaces in comparisons under every collation, so keys that differ only by them still
 * collide (docs/type-mapping.md); the duplicate key error is reported as such.
 *
 * References (Microsoft Learn): Maximum capacity specifications (index key size), CREATE INDEX, collation
 * precedence, data type storage sizes.
 */
import { FailureType, MirrorError } from '../core/errors';
import type { TableSchema } from '../core/types';
import { declarationFacts, logicalToMssqlType, mssqlTypeToLogical } from './types';

export const CLUSTERED_KEY_BYTES = 900;

/** Code point order and equality: two strings are equal only when their characters are (trailing spaces aside). */
export const KEY_COLLATION = 'Latin1_General_100_BIN2';

/** Storage bytes of fixed-width declarations (as logicalToMssqlType writes them). */
function fixedBytes(decl: string): number | null {
  const simple: Record<string, number> = {
    bit: 1, tinyint: 1, smallint: 2, int: 4, bigint: 8, real: 4, float: 8, money: 8, smallmoney: 4, date: 3,
    uniqueidentifier: 16, datetime: 8, smalldatetime: 4,
  };
  if (decl in simple) return simple[decl]!;
  const m = /^([a-z0-9]+)\((\d+)(?:,\d+)?\)$/.exec(decl);
  if (!m) return null;
  const [, name, arg] = m;
  const n = Number(arg);
  switch (name) {
    case 'decimal':
      return n <= 9 ? 5 : n <= 19 ? 9 : n <= 28 ? 13 : 17;
    case 'time':
      return n <= 2 ? 3 : n <= 4 ? 4 : 5;
    case 'datetime2':
      return n <= 2 ? 6 : n <= 4 ? 7 : 8;
    case 'datetimeoffset':
      return n <= 2 ? 8 : n <= 4 ? 9 : 10;
    case 'nchar':
      return 2 * n;
    case 'binary':
      return n;
    default:
      return null;
  }
}

/** Types SQL Server cannot use in an index key at all. */
const NOT_INDEXABLE = new Set(['xml', 'geography', 'geometry']);

/** How a key column's value is measured against its bound: UTF-16 units (nvarchar) or bytes (varbinary). */
export type KeyMeasure = { unit: 'chars'; max: number } | { unit: 'bytes'; max: number } | null;

export interface KeyColumnPlan {
  name: string;
  /** Index of the column in the table (and in a staged row). */
  index: number;
  declaration: string;
  /** A string key: declared with KEY_COLLATION, compared with it. */
  collated: boolean;
  /** Bytes the column always takes in the key, or 0 for a variable-length one. */
  fixed: number;
  measure: KeyMeasure;
}

export interface KeyPlan {
  columns: KeyColumnPlan[];
  /** Bytes left for the variable-length key columns together. */
  budget: number;
}

/**
 * The key columns' declarations for a table. Throws TableFailed (without tenant context: the caller adds it) when
 * no row could ever fit: fixed-width key columns over the limit, or a key type that cannot be indexed.
 */
export function keyPlan(table: TableSchema): KeyPlan {
  const natural = table.primaryKey.map((name) => {
    const index = table.columns.findIndex((c) => c.name === name);
    const column = table.columns[index];
    if (!column) throw new MirrorError(FailureType.BadConfig, `primary key column ${name} is not a column of ${table.name}`);
    return { name, index, declaration: logicalToMssqlType(column.type) };
  });
  for (const k of natural) {
    if (NOT_INDEXABLE.has(k.declaration)) {
      throw new MirrorError(
        FailureType.TableFailed,
        `table ${table.name}: primary key column ${k.name} would be ${k.declaration}, which SQL Server cannot index; mirror this table to PostgreSQL or exclude it`,
      );
    }
  }
  const fixedTotal = natural.reduce((sum, k) => sum + (fixedBytes(k.declaration) ?? 0), 0);
  const budget = CLUSTERED_KEY_BYTES - fixedTotal;
  const hasVariable = natural.some((k) => fixedBytes(k.declaration) === null);
  if (budget < 0 || (hasVariable && budget < 2)) {
    throw new MirrorError(
      FailureType.TableFailed,
      `table ${table.name}: its primary key needs at least ${fixedTotal} bytes per row, and a SQL Server index key holds at most ${CLUSTERED_KEY_BYTES}; mirror this table to PostgreSQL or exclude it`,
    );
  }
  return { budget, columns: natural.map((k) => planColumn(k, budget)) };
}

function planColumn(k: { name: string; index: number; declaration: string }, budget: number): KeyColumnPlan {
  const fixed = fixedBytes(k.declaration);
  const base = { name: k.name, index: k.index, collated: /^n(var)?char\(/.test(k.declaration) };
  if (fixed !== null) return { ...base, declaration: k.declaration, fixed, measure: null };
  const string = /^nvarchar\((max|\d+)\)$/.exec(k.declaration);
  if (string) {
    const max = Math.min(string[1] === 'max' ? Infinity : Number(string[1]), Math.floor(budget / 2));
    return { ...base, declaration: `nvarchar(${max})`, fixed: 0, measure: { unit: 'chars', max } };
  }
  const binary = /^varbinary\((max|\d+)\)$/.exec(k.declaration);
  if (binary) {
    const max = Math.min(binary[1] === 'max' ? Infinity : Number(binary[1]), budget);
    return { ...base, declaration: `varbinary(${max})`, fixed: 0, measure: { unit: 'bytes', max } };
  }
  // hierarchyid, sql_variant: variable, with no size the mirror can know before the server does.
  return { ...base, declaration: k.declaration, fixed: 0, measure: null };
}

/** Every column's declaration for CREATE TABLE (keys per the plan), in column order. */
export function mirrorDeclarations(table: TableSchema, plan: KeyPlan = keyPlan(table)): string[] {
  const keys = new Map(plan.columns.map((k) => [k.index, k.declaration]));
  return table.columns.map((c, i) => keys.get(i) ?? logicalToMssqlType(c.type));
}

/**
 * The schema as this mirror stores it: its declarations (bounded keys included) read back as types. An existing
 * mirror table is compared with this, so a bounded key does not read as a changed one.
 */
export function storedSchema(table: TableSchema): TableSchema {
  const declarations = mirrorDeclarations(table);
  return { ...table, columns: table.columns.map((c, i) => ({ ...c, type: mssqlTypeToLogical(declarationFacts(declarations[i]!)) })) };
}

/** The size of a staged key value (copyFieldToMssql output): UTF-16 units of a string, bytes of '0x…' hex. */
function measured(measure: Exclude<KeyMeasure, null>, value: string): { amount: number; bytes: number } {
  if (measure.unit === 'chars') return { amount: value.length, bytes: 2 * value.length };
  const bytes = Math.max(0, (value.length - 2) / 2);
  return { amount: bytes, bytes };
}

/**
 * Why a staged row's key cannot be stored in the mirror, or null. The message names the column and sizes, never
 * the value.
 */
export function keyMisfit(table: TableSchema, plan: KeyPlan, row: readonly (string | null)[], offset = 0): string | null {
  let variableBytes = 0;
  for (const k of plan.columns) {
    const value = row[k.index + offset];
    if (k.measure === null || value === null || value === undefined) continue;
    const { amount, bytes } = measured(k.measure, value);
    if (amount > k.measure.max) {
      return `table ${table.name}: a primary key value of column ${k.name} has ${amount} ${k.measure.unit === 'chars' ? 'UTF-16 characters' : 'bytes'}, more than the mirror's ${k.declaration} holds (SQL Server index keys hold at most ${CLUSTERED_KEY_BYTES} bytes); mirror this table to PostgreSQL or exclude it`;
    }
    variableBytes += bytes;
  }
  if (variableBytes > plan.budget) {
    return `table ${table.name}: a primary key needs ${CLUSTERED_KEY_BYTES - plan.budget + variableBytes} bytes, more than the ${CLUSTERED_KEY_BYTES} a SQL Server index key holds; mirror this table to PostgreSQL or exclude it`;
  }
  return null;
}
