/**
 * SQL Server as a change source, with its built-in Change Tracking.
 *
 * Versions and LSN semantics. CHANGE_TRACKING_CURRENT_VERSION() is the version of the last committed tracked
 * transaction, and CHANGETABLE(CHANGES t, @v) returns the changes with SYS_CHANGE_VERSION > @v. A snapshot reads
 * the current version V first, then the rows or changes, all in one SNAPSHOT transaction; the mirror records V as
 * its LSN, and the next cycle passes it back as `fromVersion`. So on SQL Server an LSN means "every change with
 * version <= LSN is applied", and a cycle ships `fromVersion < change <= version` — the PostgreSQL adapter's
 * `fromVersion <= change < version` shifted by one, because PostgreSQL's horizon is the first version *not* yet
 * visible while SQL Server's is the last one that is. Each dialect only ever receives its own versions back, so
 * both read as: the LSN covers everything before the snapshot it came from.
 *
 * Why V is read first: the snapshot of a SNAPSHOT transaction starts at its first data access, so every change
 * with version <= V (committed before V was read) is visible to the reads that follow. A change committed between
 * reading V and the snapshot's start can show up as well; it is shipped with the row as the snapshot sees it, and
 * again by the next cycle (its version is > V) — applied idempotently. None is ever skipped.
 *
 * Deletes: the change rows are outer-joined to the table (as Microsoft documents), so a key whose row is gone
 * comes back with no row: 'D'. The recorded operation is not used; the row decides.
 *
 * Files: catalog.ts (tables, types, fingerprint), tracking.ts (enabling Change Tracking), snapshot.ts (the reads
 * and their T-SQL), tsql.ts (conversions shared with the mirror).
 */
import sql from 'mssql';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import type { ChangeSource, ComparableSnapshot, Finding, PreflightTables, SourceOptions, SourceSnapshot, SourceTables, TableSchema } from '../core/types';
import { estimateRows, listTables, readDeclaredTypes, readFingerprint, type DeclaredTypes } from './catalog';
import { LazyPool } from './connection';
import { MssqlSnapshot } from './snapshot';
import { CURRENT_VERSION_SQL } from './snapshot';
import { sourcePreflight } from './preflight';
import { enableTracking, untrack } from './tracking';

export type MssqlChangeSourceOptions = SourceOptions;

/** Warnings already emitted by this process (a source is created per activity: each would repeat them). */
const EMITTED = new Set<string>();

export class MssqlChangeSource implements ChangeSource {
  private readonly tenant: string;
  private readonly connections: LazyPool;
  private readonly ctx: (operation: string, table?: string) => ErrorContext;
  /** Declared types of each table's columns, for key comparisons (see snapshot.ts keyValueExpr). */
  private readonly declared = new Map<string, DeclaredTypes>();

  constructor(opts: MssqlChangeSourceOptions) {
    this.tenant = opts.tenant;
    this.ctx = contextFor(opts.tenant, 'source');
    this.connections = new LazyPool(opts.url, opts.maxConnections, this.ctx('connect'));
  }

  private async run<T>(ctx: ErrorContext, fallback: (typeof FailureType)[keyof typeof FailureType], fn: (pool: sql.ConnectionPool) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.connections.get());
    } catch (err) {
      throw toMirrorError(err, ctx, fallback);
    }
  }

  async ping(): Promise<void> {
    await this.run(this.ctx('ping'), FailureType.Unavailable, (p) => p.request().query('SELECT 1 AS ok'));
  }

  async listTables(filter: (name: string) => boolean): Promise<SourceTables> {
    return this.run(this.ctx('list tables'), FailureType.SourceReadFailed, async (p) => {
      const { tables, skipped, declared } = await listTables(p, filter);
      for (const [name, types] of declared) this.declared.set(name, types);
      return { tables, skipped };
    });
  }

  /**
   * Warnings from enabling tracking (a database retention shorter than the tenant's), each once. The adapter
   * interface has no logger: they are kept here and emitted once per process as a Node warning ('warning' event;
   * printed on stderr unless the process handles it), so an operator sees them without the mirror failing.
   */
  readonly warnings: string[] = [];

  async enableTracking(table: TableSchema, retentionMs: number): Promise<boolean> {
    const outcome = await this.run(this.ctx('enable change tracking', table.name), FailureType.SourceReadFailed, (p) => enableTracking(p, table, retentionMs));
    if (outcome.warning) this.warn(outcome.warning);
    return outcome.enabled;
  }

  private warn(text: string): void {
    const message = `tenant ${this.tenant}: ${text}`;
    if (this.warnings.includes(message)) return;
    this.warnings.push(message);
    if (EMITTED.has(message)) return;
    EMITTED.add(message);
    process.emitWarning(message, { type: 'TenantMirrorWarning', code: 'MSSQL_CHANGE_RETENTION' });
  }

  snapshot(): Promise<SourceSnapshot> {
    return this.comparableSnapshot();
  }

  async comparableSnapshot(): Promise<ComparableSnapshot> {
    const ctx = this.ctx('open snapshot');
    const pool = await this.run(ctx, FailureType.Unavailable, async (p) => p);
    const tx = new sql.Transaction(pool);
    try {
      await tx.begin(sql.ISOLATION_LEVEL.SNAPSHOT);
    } catch (err) {
      throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
    }
    try {
      // First statement of the transaction: see the file comment for why the order matters.
      const v = await new sql.Request(tx).query<{ version: string | null }>(CURRENT_VERSION_SQL);
      const version = v.recordset[0]?.version ?? null;
      if (version === null) {
        throw new MirrorError(FailureType.TrackingExpired, 'change tracking is not enabled on the source database');
      }
      const fingerprint = await readFingerprint(new sql.Request(tx));
      return new MssqlSnapshot(tx, version, fingerprint, this.tenant, (t) => this.declaredTypes(t));
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
    }
  }

  untrack(select: (name: string) => boolean): Promise<string[]> {
    return this.run(this.ctx('untrack'), FailureType.SourceReadFailed, (p) => untrack(p, select));
  }

  /** SQL Server cleans up by itself (AUTO_CLEANUP = ON, set when tracking is enabled); min valid versions follow. */
  async cleanup(_retentionMs: number): Promise<void> {
    return;
  }

  preflight(plan: PreflightTables): Promise<Finding[]> {
    return this.run(this.ctx('preflight'), FailureType.SourceReadFailed, (p) => sourcePreflight(p, plan));
  }

  estimateRows(table: TableSchema): Promise<number> {
    return this.run(this.ctx('estimate rows', table.name), FailureType.SourceReadFailed, (p) => estimateRows(p, table));
  }

  async close(): Promise<void> {
    await this.connections.close();
  }

  /** Declared key column types (from listTables, or read now when this process has not listed the table). */
  private async declaredTypes(table: TableSchema): Promise<DeclaredTypes> {
    const known = this.declared.get(table.name);
    if (known) return known;
    const map = await readDeclaredTypes(await this.connections.get(), table);
    this.declared.set(table.name, map);
    return map;
  }
}
