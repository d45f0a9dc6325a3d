/**
 * Typed failures. The `type` travels through Temporal as the ApplicationFailure type, and the workflow decides
 * on it by the one failure table (contract/failures.ts); the context names the tenant, table and operation for a
 * person reading the history. Messages never contain connection strings or passwords.
 */
import { FailureType, failureAction, type FailureTypeName } from '../../contract/failures';

export { FailureType, type FailureTypeName };

export interface ErrorContext {
  tenant?: string;
  table?: string;
  operation?: string;
  side?: 'source' | 'mirror';
}

/** The context builder every adapter uses: its tenant and side, plus the operation and table of one call. */
export function contextFor(tenant: string, side: 'source' | 'mirror'): (operation: string, table?: string) => ErrorContext {
  return (operation, table) => ({ tenant, side, operation, ...(table === undefined ? {} : { table }) });
}

export class MirrorError extends Error {
  readonly type: FailureTypeName;
  readonly context: ErrorContext;

  constructor(type: FailureTypeName, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(withContext(message, context), options);
    this.name = type;
    this.type = type;
    this.context = context;
  }

  get retryable(): boolean {
    return failureAction(this.type) === 'retry';
  }
}

function withContext(message: string, context: ErrorContext): string {
  const parts = [
    context.tenant && `tenant ${context.tenant}`,
    context.side,
    context.table && `table ${context.table}`,
    context.operation,
  ].filter(Boolean);
  return parts.length ? `${message} [${parts.join(', ')}]` : message;
}

/** Adds context to a MirrorError, or classifies any other error (driver errors) into one. */
export function toMirrorError(err: unknown, context: ErrorContext, fallback: FailureTypeName): MirrorError {
  if (err instanceof MirrorError) {
    if (Object.keys(err.context).length) return err;
    return new MirrorError(err.type, err.message, context, { cause: err.cause });
  }
  const message = redact(withoutValues(err));
  return new MirrorError(classifyDriverError(err, context) ?? fallback, message, context, { cause: err });
}

function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

/** A SQL Server error's number (RequestError.number, or the tedious error it wraps). */
function numberOf(err: unknown): number | undefined {
  const e = err as { number?: unknown; originalError?: { number?: unknown; info?: { number?: unknown } } } | null;
  const n = e?.number ?? e?.originalError?.number ?? e?.originalError?.info?.number;
  return typeof n === 'number' ? n : undefined;
}

/**
 * PostgreSQL SQLSTATE classes of an error that one table's operation meets and that retrying as such cannot fix:
 * a value or statement the database refuses (22 data, 23 integrity, 42 syntax or access rule, 0A unsupported,
 * 2BP01 dependent objects, 54 program limits). In a table's operation that table fails alone (TableFailed, with
 * backoff); anywhere else an access rule is the tenant's credentials (AuthFailed).
 */
const PG_TABLE_SCOPED = /^(22|23|42|0A|54)|^2BP01$/;
/** SQL Server errors of the same kinds: conversion, truncation, NULL, constraint, key, object, column, permission. */
const MSSQL_TABLE_SCOPED = new Set([207, 208, 229, 230, 245, 515, 547, 1913, 2601, 2627, 2628, 4902, 8114, 8115, 8152, 8169, 9420, 9455]);

/** Driver error codes that say "retrying cannot help", "the server is away" or "a lock is held". */
function classifyDriverError(err: unknown, context: ErrorContext): FailureTypeName | null {
  const code = codeOf(err);
  const inTable = context.table !== undefined;
  // PostgreSQL 55P03 lock not available (our lock_timeout or NOWAIT): DDL holds the table; try again later.
  if (code === '55P03') return context.side === 'source' ? FailureType.SourceBusy : FailureType.MirrorBusy;
  // PostgreSQL: 28P01 invalid password, 28000 invalid authorization, 3D000 no such database.
  if (code === '28P01' || code === '28000') return FailureType.AuthFailed;
  if (code === '3D000') return FailureType.BadConfig;
  if (PG_TABLE_SCOPED.test(code)) return inTable ? FailureType.TableFailed : code === '42501' ? FailureType.AuthFailed : null;
  const number = numberOf(err);
  // SQL Server 1222: lock request time out period exceeded (our SET LOCK_TIMEOUT).
  if (number === 1222) return context.side === 'source' ? FailureType.SourceBusy : FailureType.MirrorBusy;
  if (number !== undefined && MSSQL_TABLE_SCOPED.has(number)) return inTable ? FailureType.TableFailed : null;
  // SQL Server (tedious): ELOGIN login failed.
  if (code === 'ELOGIN') return FailureType.AuthFailed;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'ESOCKET', 'ETIMEOUT'].includes(code)) {
    return FailureType.Unavailable;
  }
  // PostgreSQL class 08 (connection exception) and 57P01..03 (admin shutdown, crash, cannot connect now).
  if (/^08/.test(code) || /^57P0[1-3]$/.test(code)) return FailureType.Unavailable;
  // node-postgres, for a statement on a client whose connection already failed (the server went away meanwhile).
  if (err instanceof Error && /Connection terminated|connection ended|server closed the connection|connection error and is not queryable/i.test(err.message)) {
    return FailureType.Unavailable;
  }
  return null;
}

/**
 * A driver error's message without the row values some messages quote: PostgreSQL's data exceptions (class 22:
 * `invalid input syntax for type integer: "…"`, `value "…" is out of range`), and SQL Server's conversion,
 * truncation and duplicate-key messages (`… the nvarchar value '…'`, `The duplicate key value is (…)`). The column,
 * when the server names it, is kept: it says where, not what.
 */
export function withoutValues(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = codeOf(err);
  if (/^22/.test(code)) {
    const column = pgColumn(err);
    return `${message.replace(/"(?:[^"]|"")*"/g, '"…"')} (SQLSTATE ${code}${column ? `, column ${column}` : ''})`;
  }
  const number = numberOf(err);
  if (number !== undefined && MSSQL_TABLE_SCOPED.has(number)) {
    return `${message.replace(/'(?:[^']|'')*'/g, "'…'").replace(/\((?:[^()]|\([^()]*\))*\)/g, '(…)')} (SQL Server error ${number})`;
  }
  return message;
}

/** The column PostgreSQL names for an error: its `column` field, or COPY's `column x:` in `where` (whose value is dropped). */
function pgColumn(err: unknown): string | null {
  const e = err as { column?: unknown; where?: unknown };
  if (typeof e.column === 'string' && e.column) return e.column;
  const where = typeof e.where === 'string' ? /column (\S+?):/.exec(e.where) : null;
  return where?.[1] ?? null;
}

/** Removes credentials from anything that looks like a connection URL. */
export function redact(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]+):([^@/\s]+)@/gi, '$1$2:***@');
}
