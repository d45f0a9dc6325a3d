/**
 * Typed failures. The `type` travels through Temporal as the ApplicationFailure type, and the workflow decides
 * on it (see workflows/failures.ts); the context names the tenant, table and operation for a person reading the
 * history. Messages never contain connection strings or passwords.
 */

export const FailureType = {
  /** The mirror cannot hold the new table shape in place: the table was replaced and must be repopulated. */
  IncompatibleSchema: 'IncompatibleSchema',
  /** Changes since the mirror's LSN are no longer available at the source: repopulate. */
  TrackingExpired: 'TrackingExpired',
  /** The source was restored or rebuilt (version went back or fingerprint changed). */
  SourceRestored: 'SourceRestored',
  /** Wrong credentials or permissions: retrying would only hammer the database. */
  AuthFailed: 'AuthFailed',
  /** Configuration is invalid or names something that does not exist. */
  BadConfig: 'BadConfig',
  /** A database could not be reached or dropped the connection: retried with backoff. */
  Unavailable: 'Unavailable',
  /** The mirror rejected a value or statement: retried with backoff (the batch rolled back, the LSN stayed). */
  MirrorWriteFailed: 'MirrorWriteFailed',
  /** Reading the source failed in a way that is worth retrying. */
  SourceReadFailed: 'SourceReadFailed',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** Failures that retrying cannot fix; the workflow acts on them instead. */
export const NON_RETRYABLE: readonly FailureTypeName[] = [
  FailureType.IncompatibleSchema,
  FailureType.TrackingExpired,
  FailureType.SourceRestored,
  FailureType.AuthFailed,
  FailureType.BadConfig,
];

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
    return !NON_RETRYABLE.includes(this.type);
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
