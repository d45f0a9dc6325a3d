/**
 * Identifier quoting. Every identifier that reaches SQL text goes through one of these, whatever its origin
 * (source catalog, configuration, CLI): a hostile table name is just a strange name.
 */
import { MirrorError, FailureType } from './errors';

function assertUsable(name: string, dialect: string): void {
  if (name.length === 0) throw new MirrorError(FailureType.BadConfig, `empty ${dialect} identifier`);
  if (name.includes('\u0000')) {
    throw new MirrorError(FailureType.BadConfig, `${dialect} identifier contains a NUL character: ${JSON.stringify(name)}`);
  }
}

/** PostgreSQL: double quotes, embedded quotes doubled. */
export function quotePg(name: string): string {
  assertUsable(name, 'PostgreSQL');
  return `"${name.replace(/"/g, '""')}"`;
}

/** SQL Server: brackets, embedded closing brackets doubled (what QUOTENAME does). */
export function quoteMssql(name: string): string {
  assertUsable(name, 'SQL Server');
  if (name.length > 128) throw new MirrorError(FailureType.BadConfig, `SQL Server identifier longer than 128 characters: ${name}`);
  return `[${name.replace(/]/g, ']]')}]`;
}

/** A string literal for PostgreSQL (standard_conforming_strings on). */
export function literalPg(value: string): string {
  if (value.includes('\u0000')) throw new MirrorError(FailureType.BadConfig, 'string literal contains a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

/** An N'' string literal for SQL Server. */
export function literalMssql(value: string): string {
  return `N'${value.replace(/'/g, "''")}'`;
}

/**
 * PostgreSQL truncates identifiers to 63 bytes; derived names (shadow tables, side tables) must stay distinct
 * and under it, so long ones are shortened with a hash suffix.
 */
export function fitPgIdentifier(name: string, hash: (s: string) => string): string {
  if (Buffer.byteLength(name, 'utf8') <= 63) return name;
  const suffix = '_' + hash(name).slice(0, 10);
  let head = name;
  while (Buffer.byteLength(head + suffix, 'utf8') > 63) head = head.slice(0, -1);
  return head + suffix;
}

/**
 * The name a source table has in the mirror (TableSchema.name): `schema.table`, or just `table` in the source's
 * default schema (`public`, `dbo`). The mirror stores it as one identifier.
 */
export function mirroredTableName(schema: string, table: string, defaultSchema: string): string {
  return schema === defaultSchema ? table : `${schema}.${table}`;
}
