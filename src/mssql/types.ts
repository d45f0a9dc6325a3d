/**
 * SQL Server ⇄ logical type mapping (see docs/type-mapping.md for the table and what is approximate).
 *
 * Source side: a column's catalog facts (sys.columns + sys.types, alias types resolved to their base type) become a
 * LogicalType. Mirror side: a LogicalType becomes a column type for CREATE TABLE, always written in the normalized
 * form `formatMssqlType` produces from the catalog, so an existing mirror table can be compared with the schema it
 * should have by plain string equality.
 */
import type { LogicalType } from '../core/types';

/** Catalog facts of one column, as sys.columns reports them (max_length in bytes, -1 for max). */
export interface MssqlColumnFacts {
  typeName: string;
  maxLength: number;
  precision: number;
  scale: number;
  /** A user-defined CLR type (sys.types.is_assembly_type and is_user_defined): read only through its ToString(). */
  clr?: boolean;
}

/** The native type name of a user-defined CLR type starts with this, so that readExpr knows to call ToString(). */
export const CLR_PREFIX = 'clr:';

/** SQL Server types kept by name when the mirror is SQL Server too (a PostgreSQL mirror stores their text form). */
export const MSSQL_NATIVE = new Set(['hierarchyid', 'geography', 'geometry', 'sql_variant']);

export function mssqlTypeToLogical(c: MssqlColumnFacts): LogicalType {
  const name = c.typeName.toLowerCase();
  if (c.clr) return { kind: 'native', dialect: 'mssql', name: `${CLR_PREFIX}${name}` };
  switch (name) {
    case 'bit':
      return { kind: 'boolean' };
    case 'tinyint':
      return { kind: 'int8' };
    case 'smallint':
      return { kind: 'int16' };
    case 'int':
      return { kind: 'int32' };
    case 'bigint':
      return { kind: 'int64' };
    case 'decimal':
    case 'numeric':
      return { kind: 'decimal', precision: c.precision, scale: c.scale };
    case 'money':
      return { kind: 'money' };
    case 'smallmoney':
      // Exactly the range and scale of smallmoney; read through CAST(... AS decimal(10,4)), so no digit is lost.
      return { kind: 'decimal', precision: 10, scale: 4 };
    case 'real':
      return { kind: 'float32' };
    case 'float':
      // float(1..24) is stored as real (precision 24), float(25..53) as float (precision 53).
      return c.precision <= 24 ? { kind: 'float32' } : { kind: 'float64' };
    case 'char':
      return { kind: 'string', length: c.maxLength, fixed: true };
    case 'nchar':
      return { kind: 'string', length: c.maxLength / 2, fixed: true };
    case 'varchar':
      return c.maxLength === -1 ? { kind: 'string' } : { kind: 'string', length: c.maxLength };
    case 'nvarchar':
      return c.maxLength === -1 ? { kind: 'string' } : { kind: 'string', length: c.maxLength / 2 };
    case 'sysname':
      return { kind: 'string', length: 128 };
    case 'text':
    case 'ntext':
      return { kind: 'string' };
    case 'binary':
      return { kind: 'binary', length: c.maxLength, fixed: true };
    case 'varbinary':
      return c.maxLength === -1 ? { kind: 'binary' } : { kind: 'binary', length: c.maxLength };
    case 'image':
      return { kind: 'binary' };
    case 'timestamp':
    case 'rowversion':
      // The source's row version, as its 8 bytes: a mirror cannot (and should not) generate its own.
      return { kind: 'binary', length: 8, fixed: true };
    case 'date':
      return { kind: 'date' };
    case 'time':
      return { kind: 'time', precision: c.scale };
    case 'datetime':
      return { kind: 'timestamp', precision: 3 };
    case 'smalldatetime':
      return { kind: 'timestamp', precision: 0 };
    case 'datetime2':
      return { kind: 'timestamp', precision: c.scale };
    case 'datetimeoffset':
      return { kind: 'timestamptz', precision: c.scale };
    case 'uniqueidentifier':
      return { kind: 'uuid' };
    case 'xml':
      return { kind: 'xml' };
    case 'json':
      // SQL Server 2025's native json type.
      return { kind: 'json' };
    default:
      return { kind: 'native', dialect: 'mssql', name };
  }
}

/** Largest nvarchar(n) / varbinary(n) before `max`. */
const NVARCHAR_MAX_N = 4000;
const BINARY_MAX_N = 8000;

/** The SQL Server column type a mirror creates for a logical type (normalized like `formatMssqlType`). */
export function logicalToMssqlType(type: LogicalType): string {
  switch (type.kind) {
    case 'boolean':
      return 'bit';
    case 'int8':
      return 'tinyint';
    case 'int16':
      return 'smallint';
    case 'int32':
      return 'int';
    case 'int64':
      return 'bigint';
    case 'decimal':
      // Wider than decimal(38): its exact text (PostgreSQL numeric precision is at most 1000 digits).
      return decimalStorage(type) ?? 'nvarchar(1002)';
    case 'money':
      return 'money';
    case 'float32':
      return 'real';
    case 'float64':
      return 'float';
    case 'string': {
      const n = type.length;
      if (n === undefined || n > NVARCHAR_MAX_N) return 'nvarchar(max)';
      return type.fixed ? `nchar(${n})` : `nvarchar(${n})`;
    }
    case 'binary': {
      const n = type.length;
      if (n === undefined || n > BINARY_MAX_N) return 'varbinary(max)';
      return type.fixed ? `binary(${n})` : `varbinary(${n})`;
    }
    case 'date':
      return 'date';
    case 'time':
      return `time(${clampScale(type.precision)})`;
    case 'timestamp':
      return `datetime2(${clampScale(type.precision)})`;
    case 'timestamptz':
      return `datetimeoffset(${clampScale(type.precision)})`;
    case 'timetz':
      // No SQL Server type holds a time of day with an offset: its text form ('10:00:00.123456+02').
      return 'nvarchar(40)';
    case 'interval':
      return 'nvarchar(100)';
    case 'uuid':
      return 'uniqueidentifier';
    case 'json':
    case 'jsonb':
    case 'array':
      return 'nvarchar(max)';
    case 'xml':
      return 'xml';
    case 'native':
      if (type.dialect === 'mssql' && MSSQL_NATIVE.has(type.name)) return type.name;
      return 'nvarchar(max)';
  }
}

/** decimal(p,s) when SQL Server can hold it exactly, else null (stored as text). */
export function decimalStorage(type: { precision?: number; scale?: number }): string | null {
  if (type.precision === undefined) {
    // PostgreSQL's unconstrained numeric: any scale. decimal(38,10) keeps 28 integer and 10 fractional digits;
    // more fractional digits are rounded (documented as approximate).
    return 'decimal(38,10)';
  }
  const scale = type.scale ?? 0;
  if (type.precision > 38 || scale < 0 || scale > type.precision) return null;
  return `decimal(${type.precision},${scale})`;
}

function clampScale(precision: number | undefined): number {
  if (precision === undefined) return 7;
  return Math.max(0, Math.min(7, precision));
}

/**
 * The normalized declaration of an existing column, from sys.columns facts: what `logicalToMssqlType` writes for
 * the same type. Used to decide whether a mirror table already matches its schema.
 */
export function formatMssqlType(c: MssqlColumnFacts): string {
  const name = c.typeName.toLowerCase();
  switch (name) {
    case 'decimal':
    case 'numeric':
      return `decimal(${c.precision},${c.scale})`;
    case 'nvarchar':
    case 'nchar':
      return `${name}(${c.maxLength === -1 ? 'max' : c.maxLength / 2})`;
    case 'varchar':
    case 'char':
    case 'varbinary':
    case 'binary':
      return `${name}(${c.maxLength === -1 ? 'max' : c.maxLength})`;
    case 'time':
    case 'datetime2':
    case 'datetimeoffset':
      return `${name}(${c.scale})`;
    case 'float':
      return c.precision <= 24 ? 'real' : 'float';
    default:
      return name;
  }
}

/** Catalog facts of a declaration written by `logicalToMssqlType` (its inverse, for normalizing a schema). */
export function declarationFacts(decl: string): MssqlColumnFacts {
  const m = /^([a-z_0-9]+)(?:\((max|\d+)(?:,(\d+))?\))?$/.exec(decl);
  if (!m) throw new Error(`not a normalized SQL Server type: ${decl}`);
  const name = m[1]!;
  const arg = m[2] === undefined ? undefined : m[2] === 'max' ? -1 : Number(m[2]);
  const facts: MssqlColumnFacts = { typeName: name, maxLength: 0, precision: 0, scale: 0 };
  switch (name) {
    case 'nvarchar':
    case 'nchar':
      facts.maxLength = arg === undefined ? 2 : arg === -1 ? -1 : arg * 2;
      break;
    case 'varchar':
    case 'char':
    case 'varbinary':
    case 'binary':
      facts.maxLength = arg ?? 1;
      break;
    case 'decimal':
    case 'numeric':
      facts.precision = arg ?? 18;
      facts.scale = m[3] === undefined ? 0 : Number(m[3]);
      break;
    case 'time':
    case 'datetime2':
    case 'datetimeoffset':
      facts.scale = arg ?? 7;
      break;
    case 'float':
      facts.precision = 53;
      break;
    case 'real':
      facts.precision = 24;
      break;
  }
  return facts;
}

/** The logical type as a SQL Server mirror would store it (through the mapping and back). */
export function normalizeForMssql(type: LogicalType): LogicalType {
  return mssqlTypeToLogical(declarationFacts(logicalToMssqlType(type)));
}

/** One column as the catalog queries of sql.ts return it (sys.columns joined to its type and primary key). */
export interface CatalogColumn {
  column_name: string;
  type_name: string;
  max_length: number;
  precision: number;
  scale: number;
  is_nullable: boolean;
  key_ordinal: number | null;
}
