/**
 * The PostgreSQL change source: tables and schemas from the catalog (catalog.ts), trigger-based change tracking
 * (tracking.ts), and consistent snapshots that stream rows and net changes as COPY text straight from the server
 * (snapshot.ts).
 */
import type { Pool } from 'pg';
import type { ChangeSource, ComparableSnapshot, Finding, PreflightTables, SourceOptions, SourceSnapshot, SourceTables, TableSchema } from '../core/types';
import { FailureType, type ErrorContext, contextFor } from '../core/errors';
import { estimateRows, listTables } from './catalog';
import { createPgPool, withClient } from './connection';
import { sourcePreflight } from './preflight';
import { PgSourceSnapshot } from './snapshot';
import { cleanupTracking, enableTracking, untrack } from './tracking';

/** maxConnections: a snapshot holds one connection for its lifetime; default 4. */
export interface PgChangeSourceOptions extends SourceOptions {
  /**
   * How long enableTracking (and untrack) waits for a table lock before failing, retryably. Short, because the
   * tenant's writers queue behind the waiting request: default 1 s.
   */
  lockTimeoutMs?: number;
}

export class PgChangeSource implements ChangeSource {
  private readonly pool: Pool;
  private readonly lockTimeoutMs: number;
  private readonly openSnapshots = new Set<PgSourceSnapshot>();

  constructor(opts: PgChangeSourceOptions) {
    this.ctx = contextFor(opts.tenant, 'source');
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 1_000;
    this.pool = createPgPool(opts.url, { max: opts.maxConnections ?? 4, applicationName: 'tenant-mirror' });
  }

  private readonly ctx: (operation: string, table?: string) => ErrorContext;

  async ping(): Promise<void> {
    await withClient(this.pool, this.ctx('ping'), (c) => c.query('SELECT 1'), FailureType.Unavailable);
  }

  listTables(filter: (name: string) => boolean): Promise<SourceTables> {
    return withClient(this.pool, this.ctx('list tables'), (c) => listTables(c, filter), FailureType.SourceReadFailed);
  }

  enableTracking(table: TableSchema, retentionMs: number): Promise<boolean> {
    return enableTracking(this.pool, table, { retentionMs, lockTimeoutMs: this.lockTimeoutMs }, this.ctx('enable tracking', table.name));
  }

  snapshot(): Promise<SourceSnapshot> {
    return this.comparableSnapshot();
  }

  async comparableSnapshot(): Promise<ComparableSnapshot> {
    const snap = await PgSourceSnapshot.open(this.pool, this.ctx('snapshot'), (s) => this.openSnapshots.delete(s));
    this.openSnapshots.add(snap);
    return snap;
  }

  untrack(select: (name: string) => boolean, opts: { removeUnused?: boolean } = {}): Promise<string[]> {
    return untrack(this.pool, select, { lockTimeoutMs: this.lockTimeoutMs, removeUnused: opts.removeUnused ?? false }, this.ctx('untrack'));
  }

  cleanup(retentionMs: number): Promise<void> {
    return cleanupTracking(this.pool, retentionMs, this.ctx('tracking cleanup'));
  }

  preflight(plan: PreflightTables): Promise<Finding[]> {
    return withClient(this.pool, this.ctx('preflight'), (c) => sourcePreflight(c, plan), FailureType.SourceReadFailed);
  }

  estimateRows(table: TableSchema): Promise<number> {
    return withClient(this.pool, this.ctx('estimate rows', table.name), (c) => estimateRows(c, table), FailureType.SourceReadFailed);
  }

  /** Closes snapshots still open (pool.end() would wait for their connections forever), then the pool. */
  async close(): Promise<void> {
    await Promise.all([...this.openSnapshots].map((s) => s.close()));
    await this.pool.end();
  }
}

