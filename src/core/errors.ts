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
  const message = redact(err instanceof Error ? err.message : String(err));
  return new MirrorError(classifyDriverError(err) ?? fallback, message, context, { cause: err });
}

/** Driver error codes that say "retrying cannot help" or "the server is away". */
function classifyDriverError(err: unknown): FailureTypeName | null {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  // PostgreSQL: 28P01 invalid password, 28000 invalid authorization, 3D000 no such database, 42501 permission.
  if (code === '28P01' || code === '28000' || code === '42501') return FailureType.AuthFailed;
  if (code === '3D000') return FailureType.BadConfig;
  // SQL Server (tedious): ELOGIN login failed.
  if (code === 'ELOGIN') return FailureType.AuthFailed;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'ESOCKET', 'ETIMEOUT'].includes(code)) {
    return FailureType.Unavailable;
  }
  // PostgreSQL class 08 (connection exception) and 57P01..03 (admin shutdown, crash, cannot connect now).
  if (/^08/.test(code) || /^57P0[1-3]$/.test(code)) return FailureType.Unavailable;
  if (err instanceof Error && /Connection terminated|connection ended|server closed the connection/i.test(err.message)) {
    return FailureType.Unavailable;
  }
  return null;
}

/** Removes credentials from anything that looks like a connection URL. */
export function redact(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]+):([^@/\s]+)@/gi, '$1$2:***@');
}
