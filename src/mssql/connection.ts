/**
 * SQL Server connection settings from a URL, and pool creation. The URL is the one form the tenants file uses for
 * every database:
 *
 *   mssql://user:password@host:1433/database?encrypt=true&trustServerCertificate=false
 *   sqlserver://...   (same thing)
 *
 * Query parameters: `encrypt` (default true, as in the driver), `trustServerCertificate` (default false),
 * `instanceName`, `connectTimeout` / `requestTimeout` (milliseconds), `appName`.
 */
import sql from 'mssql';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';

export interface MssqlSettings {
  user: string;
  password: string;
  host: string;
  port: number | undefined;
  database: string;
  encrypt: boolean;
  trustServerCertificate: boolean;
  instanceName: string | undefined;
  connectTimeoutMs: number;
  /** 0 = no limit: a population streams one table in one request, for as long as it takes. */
  requestTimeoutMs: number;
  appName: string;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

function parseBool(name: string, value: string | null, fallback: boolean): boolean {
  if (value === null || value === '') return fallback;
  const v = value.toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new MirrorError(FailureType.BadConfig, `SQL Server URL parameter ${name} must be true or false, not ${JSON.stringify(value)}`);
}

function parseMs(name: string, value: string | null, fallback: number): number {
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new MirrorError(FailureType.BadConfig, `SQL Server URL parameter ${name} must be a whole number of milliseconds`);
  }
  return n;
}

/** Parses an mssql:// or sqlserver:// URL. Errors never repeat the URL (it holds a password). */
export function parseMssqlUrl(url: string): MssqlSettings {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MirrorError(FailureType.BadConfig, 'SQL Server URL is not a valid URL');
  }
  if (u.protocol !== 'mssql:' && u.protocol !== 'sqlserver:') {
    throw new MirrorError(FailureType.BadConfig, `SQL Server URL must start with mssql:// or sqlserver://, not ${u.protocol}//`);
  }
  if (!u.hostname) throw new MirrorError(FailureType.BadConfig, 'SQL Server URL has no host');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) {
    throw new MirrorError(FailureType.BadConfig, 'SQL Server URL must name one database as its path (mssql://host/database)');
  }
  const known = new Set(['encrypt', 'trustServerCertificate', 'instanceName', 'connectTimeout', 'requestTimeout', 'appName']);
  for (const key of u.searchParams.keys()) {
    if (!known.has(key)) throw new MirrorError(FailureType.BadConfig, `unknown SQL Server URL parameter ${key} (known: ${[...known].join(', ')})`);
  }
  const q = u.searchParams;
  return {
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    // IPv6 hosts come bracketed from URL; the driver wants them bare.
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : undefined,
    database,
    encrypt: parseBool('encrypt', q.get('encrypt'), true),
    trustServerCertificate: parseBool('trustServerCertificate', q.get('trustServerCertificate'), false),
    instanceName: q.get('instanceName') || undefined,
    connectTimeoutMs: parseMs('connectTimeout', q.get('connectTimeout'), 15_000),
    requestTimeoutMs: parseMs('requestTimeout', q.get('requestTimeout'), 0),
    appName: q.get('appName') || 'tenant-mirror',
  };
}

/** The mssql driver configuration for parsed settings. */
export function toMssqlConfig(s: MssqlSettings, maxConnections = 4): sql.config {
  return {
    server: s.host,
    port: s.instanceName ? undefined : s.port ?? 1433,
    user: s.user,
    password: s.password,
    database: s.database,
    connectionTimeout: s.connectTimeoutMs,
    requestTimeout: s.requestTimeoutMs,
    options: {
      encrypt: s.encrypt,
      trustServerCertificate: s.trustServerCertificate,
      instanceName: s.instanceName,
      appName: s.appName,
      // Our statements rely on these ANSI settings (they are the driver defaults; stated so a change shows).
      enableArithAbort: true,
    },
    pool: { max: maxConnections, min: 0, idleTimeoutMillis: 30_000 },
  };
}

/** Opens a pool; connection failures become typed failures (AuthFailed, Unavailable, BadConfig). */
export async function openPool(url: string, maxConnections: number | undefined, ctx: ErrorContext): Promise<sql.ConnectionPool> {
  const config = toMssqlConfig(parseMssqlUrl(url), maxConnections);
  const pool = new sql.ConnectionPool(config);
  // An idle connection dropped by the server must not crash the process; the next request reconnects.
  pool.on('error', () => undefined);
  try {
    await pool.connect();
  } catch (err) {
    throw toMirrorError(err, { ...ctx, operation: ctx.operation ?? 'connect' }, FailureType.Unavailable);
  }
  return pool;
}

/** The SQL Server error number of a driver error (RequestError.number, or the tedious error it wraps). */
export function errorNumber(err: unknown): number | undefined {
  const e = err as { number?: unknown; originalError?: { number?: unknown; info?: { number?: unknown } } };
  const n = e?.number ?? e?.originalError?.number ?? e?.originalError?.info?.number;
  return typeof n === 'number' ? n : undefined;
}

/**
 * A pool opened on first use and shared by an adapter's calls. A failed connect is not kept: the next call tries
 * again (a server that was down may be back).
 */
export class LazyPool {
  private pending: Promise<sql.ConnectionPool> | null = null;

  constructor(
    private readonly url: string,
    private readonly maxConnections: number | undefined,
    private readonly ctx: ErrorContext,
  ) {
    parseMssqlUrl(url); // fail fast on a malformed URL (BadConfig)
  }

  get(): Promise<sql.ConnectionPool> {
    if (!this.pending) {
      const opening = openPool(this.url, this.maxConnections, this.ctx);
      this.pending = opening;
      opening.catch(() => {
        if (this.pending === opening) this.pending = null;
      });
    }
    return this.pending;
  }

  async close(): Promise<void> {
    const pending = this.pending;
    this.pending = null;
    if (pending) await pending.then((p) => p.close()).catch(() => undefined);
  }
}
