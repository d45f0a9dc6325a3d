/**
 * T-SQL that both SQL Server adapters use: identifiers, the server-side value conversions between a column and
 * its text form (what COPY text carries), and the column catalog of one table. Every identifier goes through
 * quoteMssql.
 *
 * References (Microsoft Learn): CAST and CONVERT (styles), sys.columns, sys.index_columns.
 */
import { createHash } from 'node:crypto';
import type { LogicalType, TableSchema } from '../core/types';
import { quoteMssql } from '../core/identifiers';
import { FailureType, MirrorError } from '../core/errors';
import { CLR_PREFIX, decimalStorage, logicalToMssqlType, MSSQL_NATIVE } from './types';

export const q = quoteMssql;

/** A fingerprint component the server would not show this login: no evidence either way (activities/decide.ts). */
export const UNAVAILABLE = 'unavailable';

/** `[schema].[table]` */
export function tableRef(schema: string, table: string): string {
  return `${q(schema)}.${q(table)}`;
}

/**
 * SQL Server identifiers are at most 128 characters; a derived name (shadow table) that would be longer is cut and
 * given a hash suffix so that it stays distinct.
 */
export function fitMssqlIdentifier(name: string): string {
  if (name.length <= 128) return name;
  const suffix = '_' + createHash('sha256').update(name).digest('hex').slice(0, 10);
  return name.slice(0, 128 - suffix.length) + suffix;
}



/**
 * A column read as a string on the server, in a form `mssqlToCopyField` maps to PostgreSQL text without loss:
 * CONVERT styles 2 (money: 4 decimals; binary: hex), 3 (float/real: 17/9 digits, "lossless"), 23 (date),
 * 121 (ODBC canonical with fractions: time, datetime, datetime2, datetimeoffset with its offset).
 */
export function readExpr(type: LogicalType, col: string): string {
  switch (type.kind) {
    case 'boolean':
      return `CONVERT(char(1), ${col})`;
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      return `CONVERT(varchar(20), ${col})`;
    case 'decimal':
      return type.precision !== undefined && type.precision <= 38
        ? `CONVERT(varchar(50), CAST(${col} AS decimal(${type.precision},${type.scale ?? 0})))`
        : `CONVERT(varchar(50), ${col})`;
    case 'money':
      return `CONVERT(varchar(30), ${col}, 2)`;
    case 'float32':
    case 'float64':
      return `CONVERT(varchar(30), ${col}, 3)`;
    case 'binary':
      return `CONVERT(varchar(max), CAST(${col} AS varbinary(max)), 2)`;
    case 'date':
      return `CONVERT(varchar(10), ${col}, 23)`;
    case 'time':
      return `CONVERT(varchar(16), ${col}, 121)`;
    case 'timestamp':
      return `CONVERT(varchar(27), ${col}, 121)`;
    case 'timestamptz':
      return `CONVERT(varchar(34), ${col}, 121)`;
    case 'uuid':
      return `LOWER(CONVERT(char(36), ${col}))`;
    case 'native':
      if (type.dialect === 'mssql') return nativeReadExpr(type.name, col);
      return `CAST(${col} AS nvarchar(max))`;
    default:
      return `CAST(${col} AS nvarchar(max))`;
  }
}

function nativeReadExpr(name: string, col: string): string {
  // A user-defined CLR type converts to no string type: CAST fails. Its ToString() method is its text form.
  if (name.startsWith(CLR_PREFIX)) return `${col}.ToString()`;
  switch (name) {
    case 'hierarchyid':
      return `${col}.ToString()`;
    case 'geography':
    case 'geometry':
      // EWKT ('SRID=4326;POINT (1 2)'): the SRID survives, and PostGIS reads the form directly. AsTextZM keeps Z and M.
      return `CASE WHEN ${col} IS NULL THEN NULL ELSE N'SRID=' + CAST(${col}.STSrid AS nvarchar(11)) + N';' + ${col}.AsTextZM() END`;
    case 'sql_variant':
      return sqlVariantReadExpr(col);
    default:
      return `CAST(${col} AS nvarchar(max))`;
  }
}

/** The text form of a sql_variant's base value, with the same lossless styles as a column of that base type. */
function sqlVariantReadExpr(col: string): string {
  const base = `CONVERT(nvarchar(128), SQL_VARIANT_PROPERTY(${col}, 'BaseType'))`;
  return `CASE WHEN ${col} IS NULL THEN NULL
  WHEN ${base} IN (N'binary', N'varbinary') THEN N'0x' + CONVERT(nvarchar(max), CAST(${col} AS varbinary(8000)), 2)
  WHEN ${base} IN (N'float', N'real') THEN CONVERT(nvarchar(30), CAST(${col} AS float), 3)
  WHEN ${base} IN (N'money', N'smallmoney') THEN CONVERT(nvarchar(30), CAST(${col} AS money), 2)
  WHEN ${base} IN (N'date', N'time', N'datetime', N'datetime2', N'smalldatetime', N'datetimeoffset') THEN CONVERT(nvarchar(40), ${col}, 121)
  ELSE CAST(${col} AS nvarchar(4000)) END`;
}

/**
 * A string (a parameter or a staging column holding `copyFieldToMssql` output) converted to the mirror column type
 * `logicalToMssqlType(type)`. Date and time strings are ISO 8601 with 'T', which SQL Server reads the same under
 * every SET LANGUAGE / SET DATEFORMAT.
 */
export function fromTextExpr(type: LogicalType, expr: string): string {
  switch (type.kind) {
    case 'boolean':
      return `CAST(${expr} AS bit)`;
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'money':
    case 'float32':
    case 'float64':
    case 'uuid':
      return `CAST(${expr} AS ${logicalToMssqlType(type)})`;
    case 'decimal': {
      const storage = decimalStorage(type);
      return storage === null ? expr : `CAST(${expr} AS ${storage})`;
    }
    case 'binary':
      return `CONVERT(varbinary(max), ${expr}, 1)`;
    case 'date':
      return `CONVERT(date, ${expr}, 23)`;
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'xml':
      return `CAST(${expr} AS ${logicalToMssqlType(type)})`;
    case 'native':
      if (type.dialect === 'mssql' && MSSQL_NATIVE.has(type.name)) return nativeFromTextExpr(type.name, expr);
      return expr;
    default:
      return expr;
  }
}

function nativeFromTextExpr(name: string, e: string): string {
  switch (name) {
    case 'hierarchyid':
      return `hierarchyid::Parse(${e})`;
    case 'geography':
    case 'geometry': {
      // 'SRID=n;WKT' (as read by nativeReadExpr), or plain WKT with the type's usual default SRID.
      const srid = name === 'geography' ? 4326 : 0;
      return `CASE WHEN ${e} IS NULL THEN NULL
  WHEN ${e} LIKE N'SRID=%;%' THEN ${name}::STGeomFromText(SUBSTRING(${e}, CHARINDEX(N';', ${e}) + 1, 2147483647), CAST(SUBSTRING(${e}, 6, CHARINDEX(N';', ${e}) - 6) AS int))
  ELSE ${name}::STGeomFromText(${e}, ${srid}) END`;
    }
    case 'sql_variant':
      return `CAST(CAST(${e} AS nvarchar(4000)) AS sql_variant)`;
    default:
      return e;
  }
}

/** Source-side reference to a column in the table `alias`. */
export function col(alias: string, name: string): string {
  return `${alias}.${q(name)}`;
}

/** Key columns of a table with their types, in key order. */
export function keyColumns(table: TableSchema): { name: string; type: LogicalType }[] {
  return table.primaryKey.map((k) => {
    const c = table.columns.find((x) => x.name === k);
    if (!c) throw new MirrorError(FailureType.BadConfig, `primary key column ${k} is not a column of ${table.name}`);
    return { name: c.name, type: c.type };
  });
}

/** Columns of an existing table, for comparing with the schema it should have. */
export const TABLE_COLUMNS_SQL = `SELECT c.name AS column_name,
  CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(c.system_type_id) ELSE ty.name END AS type_name,
  c.max_length, c.precision, c.scale, c.is_nullable, ic.key_ordinal
FROM sys.columns AS c
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.indexes AS i ON i.object_id = c.object_id AND i.is_primary_key = 1
LEFT JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.column_id = c.column_id
WHERE c.object_id = OBJECT_ID(@object)
ORDER BY c.column_id`;
