/**
 * PostgreSQL ⇄ logical type mapping. The source side reads `format_type()` output (domains already resolved to
 * their base type, enums flagged) and the mirror side turns a logical type back into DDL. PostgreSQL → PostgreSQL
 * is exact: every type maps to itself, including precision, length and array dimensions.
 */
import type { LogicalType } from '../core/types';

/** Types whose text form is kept by name when both sides are PostgreSQL (and stored as text elsewhere). */
const NATIVE_PASSTHROUGH = new Set([
  'inet', 'cidr', 'macaddr', 'macaddr8', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle',
  'tsvector', 'tsquery', 'bit', 'bit varying', 'int4range', 'int8range', 'numrange', 'tsrange', 'tstzrange',
  'daterange', 'oid', 'pg_lsn', 'txid_snapshot', 'pg_snapshot', 'xid8',
]);

const SIMPLE: Record<string, LogicalType> = {
  boolean: { kind: 'boolean' },
  smallint: { kind: 'int16' },
  integer: { kind: 'int32' },
  bigint: { kind: 'int64' },
  real: { kind: 'float32' },
  'double precision': { kind: 'float64' },
  money: { kind: 'money' },
  text: { kind: 'string' },
  bytea: { kind: 'binary' },
  date: { kind: 'date' },
  interval: { kind: 'interval' },
  uuid: { kind: 'uuid' },
  json: { kind: 'json' },
  jsonb: { kind: 'jsonb' },
  xml: { kind: 'xml' },
  '"char"': { kind: 'string', length: 1, fixed: true },
  name: { kind: 'string', length: 63 },
};

/**
 * Maps a `format_type(type, typmod)` string to a logical type. `isEnum` marks user enums, which the mirror
 * stores as text (it has no copy of the enum type, and must not need one).
 */
export function pgTypeToLogical(formatted: string, isEnum = false): LogicalType {
  const t = formatted.trim();
  if (t.endsWith('[]')) return { kind: 'array', element: pgTypeToLogical(t.slice(0, -2), isEnum) };
  if (isEnum) return { kind: 'string' };
  const simple = SIMPLE[t];
  if (simple) return simple;
  let m = /^(numeric|decimal)(?:\((\d+)(?:,\s*(-?\d+))?\))?$/.exec(t);
  if (m) {
    if (m[2] === undefined) return { kind: 'decimal' };
    return { kind: 'decimal', precision: Number(m[2]), scale: m[3] === undefined ? 0 : Number(m[3]) };
  }
  m = /^(character varying|varchar)(?:\((\d+)\))?$/.exec(t);
  if (m) return m[2] ? { kind: 'string', length: Number(m[2]) } : { kind: 'string' };
  // Unbounded bpchar (typmod -1), which format_type prints as "bpchar": not character, which means character(1).
  if (t === 'bpchar') return { kind: 'native', dialect: 'postgres', name: t };
  m = /^(character|char)(?:\((\d+)\))?$/.exec(t);
  if (m) return { kind: 'string', length: m[2] ? Number(m[2]) : 1, fixed: true };
  m = /^(time|timestamp)(?:\((\d)\))? (with|without) time zone$/.exec(t) ?? /^(time|timestamp)(?:\((\d)\))?$/.exec(t);
  if (m) {
    const zoned = m[3] === 'with';
    const kind = m[1] === 'time' ? (zoned ? 'timetz' : 'time') : zoned ? 'timestamptz' : 'timestamp';
    return m[2] === undefined ? { kind } : { kind, precision: Number(m[2]) };
  }
  if (t === 'timestamptz') return { kind: 'timestamptz' };
  if (t === 'timetz') return { kind: 'timetz' };
  const base = t.replace(/\(.*\)$/, '');
  if (NATIVE_PASSTHROUGH.has(base)) return { kind: 'native', dialect: 'postgres', name: t };
  // Anything else (extension types, composites) is mirrored as its text form: safe, and says so in status.
  return { kind: 'native', dialect: 'postgres', name: t };
}

/** The PostgreSQL column type for a logical type (mirror DDL). */
export function logicalToPgType(type: LogicalType): string {
  switch (type.kind) {
    case 'boolean':
      return 'boolean';
    case 'int8':
    case 'int16':
      return 'smallint';
    case 'int32':
      return 'integer';
    case 'int64':
      return 'bigint';
    case 'decimal':
      if (type.precision === undefined) return 'numeric';
      return `numeric(${type.precision},${type.scale ?? 0})`;
    case 'money':
      // numeric, not PostgreSQL's money: money's text form depends on lc_monetary, numeric's does not.
      return 'numeric(19,4)';
    case 'float32':
      return 'real';
    case 'float64':
      return 'double precision';
    case 'string':
      if (type.fixed) return `character(${type.length ?? 1})`;
      return type.length !== undefined ? `character varying(${type.length})` : 'text';
    case 'binary':
      return 'bytea';
    case 'date':
      return 'date';
    case 'time':
      return type.precision === undefined ? 'time without time zone' : `time(${Math.min(type.precision, 6)}) without time zone`;
    case 'timetz':
      return type.precision === undefined ? 'time with time zone' : `time(${Math.min(type.precision, 6)}) with time zone`;
    case 'timestamp':
      return type.precision === undefined
        ? 'timestamp without time zone'
        : `timestamp(${Math.min(type.precision, 6)}) without time zone`;
    case 'timestamptz':
      return type.precision === undefined
        ? 'timestamp with time zone'
        : `timestamp(${Math.min(type.precision, 6)}) with time zone`;
    case 'interval':
      return 'interval';
    case 'uuid':
      return 'uuid';
    case 'json':
      return 'json';
    case 'jsonb':
      return 'jsonb';
    case 'xml':
      return 'xml';
    case 'array':
      return `${logicalToPgType(type.element)}[]`;
    case 'native':
      return type.dialect === 'postgres' ? type.name : 'text';
  }
}

/**
 * A column as it goes on the wire. money's text form depends on lc_monetary ("$1,234.50") and the mirror stores it
 * as numeric, so it is sent as numeric; every other type's own text form is what the mirror loads.
 */
export function columnExpr(expr: string, type: LogicalType): string {
  if (type.kind === 'money') return `${expr}::numeric`;
  if (type.kind === 'array' && type.element.kind === 'money') return `${expr}::numeric[]`;
  return expr;
}
