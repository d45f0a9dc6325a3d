/**
 * A bounded pg Pool with the settings both PostgreSQL adapters (source and mirror) want: a recognisable
 * application_name, a connect timeout, TCP keep-alive for long sessions, and session settings that make the text
 * form of values independent of server configuration (COPY text is the wire format between adapters).
 */
import { Pool, DatabaseError, type Client, type PoolClient } from 'pg';
import { toMirrorError, MirrorError, FailureType, type ErrorContext, type FailureTypeName } from '../core/errors';

/**
 * Session settings that fix the text form of dates, intervals, bytea and floats: without them, two servers with
 * different defaults (DateStyle, TimeZone) would disagree about what a COPY text line means.
 */
export const PORTABLE_TEXT_SETTINGS: Readonly<Record<string, string>> = {
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  bytea_output: 'hex',
  // 1 (PostgreSQL 12+ default) = shortest text that reads back to the same float.
  extra_float_digits: '1',
  standard_conforming_strings: 'on',
};

export interface PgPoolOptions {
  max?: number;
  applicationName?: string;
  connectionTimeoutMillis?: number;
  /** Session settings sent at connect time (`-c name=value`); PORTABLE_TEXT_SETTINGS when absent. */
  settings?: Readonly<Record<string, string>>;
  /** The client class (a capped one counts its connections against a worker-wide cap). */
  Client?: typeof Client;
}

/** How long a new connection may take, its wait for a capped slot included. */
export const CONNECT_TIMEOUT_MS = 15_000;

export function createPgPool(url: string, opts: PgPoolOptions = {}): Pool {
  const pool = new Pool({
    connectionString: url,
    max: opts.max ?? 4,
    application_name: opts.applicationName ?? 'tenant-mirror',
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    // COPY text crosses adapters as UTF-8 whatever the database encoding.
    client_encoding: 'UTF8',
    options: startupOptions(opts.settings ?? PORTABLE_TEXT_SETTINGS),
    ...(opts.Client ? { Client: opts.Client } : {}),
  });
  // An idle client that loses its server emits here; the pool already discards it and the next query reports the
  // failure with context. Without a listener the error would crash the worker.
  pool.on('error', () => undefined);
  // Likewise for a checked-out client whose server goes away: its pending query rejects with the error anyway.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** libpq `options` syntax: `-c name=value`, spaces inside a value escaped with a backslash. */
export function startupOptions(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v.replace(/\\/g, '\\\\').replace(/ /g, '\\ ')}`)
    .join(' ');
}

/** Checks out a client, classifying connection failures (bad password → AuthFailed, refused → Unavailable). */
export async function connectClient(pool: Pool, ctx: ErrorContext): Promise<PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw toMirrorError(err, ctx, FailureType.Unavailable);
  }
}

/** Runs `fn` on a pooled client and releases it; a client that failed mid-way is destroyed, not reused. */
export async function withClient<T>(
  pool: Pool,
  ctx: ErrorContext,
  fn: (client: PoolClient) => Promise<T>,
  fallback: FailureTypeName,
): Promise<T> {
  const client = await connectClient(pool, ctx);
  let broken = false;
  try {
    return await fn(client);
  } catch (err) {
    broken = !isStatementError(err);
    throw toMirrorError(err, ctx, fallback);
  } finally {
    client.release(broken);
  }
}

/** Runs `fn` inside BEGIN/COMMIT on a pooled client; rolls back on error. */
export async function withTransaction<T>(
  pool: Pool,
  ctx: ErrorContext,
  fn: (client: PoolClient) => Promise<T>,
  fallback: FailureTypeName,
): Promise<T> {
  return withClient(
    pool,
    ctx,
    async (client) => {
      await client.query('BEGIN');
      try {
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    fallback,
  );
}

/**
 * True for errors that leave the connection usable: the server rejected one statement (a DatabaseError) or our own
 * code refused to go on (a MirrorError). Anything else (a dropped socket, a protocol error) may have left the
 * connection mid-conversation, so it must not go back to the pool.
 */
export function isStatementError(err: unknown): boolean {
  if (err instanceof MirrorError) return !(err.cause !== undefined && !isStatementError(err.cause));
  return err instanceof DatabaseError && !/^(08|57P)/.test(err.code ?? '');
}
