/**
 * The shapes that cross workflow history: activity inputs and results, status. Everything here is metadata
 * (names, versions, counts, reasons): row data never passes through history.
 */

export type MirrorState = 'bootstrapping' | 'populating' | 'mirroring' | 'paused' | 'wiping' | 'blocked';

/** `paused`: an operator paused this table alone (pauseTables); the tenant's other tables go on. */
export type TableState = 'pending' | 'populating' | 'mirroring' | 'skipped' | 'failed' | 'paused';

export interface TableStatus {
  name: string;
  state: TableState;
  lsn: string | null;
  rows: number | null;
  lastSyncAt: string | null;
  error: string | null;
  /** How the table is kept up to date: change tracking, or a periodic full refresh (a table without a usable key). */
  mode?: TableMode;
  /** How the mirror stores what it could not store as received (e.g. a type it lacks, stored as text). */
  notes?: string[];
  /** Set while the table is failed: it waits with backoff, and is tried again at `retryAt`. */
  failure?: TableFailure | null;
  /**
   * Seconds since the source version the mirror holds was current (0 when the source is still at it). Filled by
   * the status route (src/status.ts) from the mirror and the source, never by the workflow.
   */
  lagSeconds?: number | null;
  /** The source's row estimate while the table is populating (for a progress bar). */
  estimatedRows?: number;
  /** The last change cycle that changed something, as `_mirror_log` records it. Filled by the status route, like lagSeconds. */
  lastCycle?: CycleCounts | null;
}

export interface CycleCounts {
  inserts: number;
  updates: number;
  deletes: number;
  /** When it committed (ISO 8601). */
  at: string;
}

export type TableMode = 'tracked' | 'refresh';

/** A failure that belongs to one table: the table waits, the tenant's other tables go on. */
export interface TableFailure {
  type: string;
  message: string;
  /** Consecutive failures; the backoff doubles with each. */
  attempts: number;
  since: string;
  retryAt: string;
}

export interface TenantStatus {
  tenantId: string;
  state: MirrorState;
  /** Why the tenant is paused or blocked, or what the last failure was. */
  reason: string | null;
  tables: TableStatus[];
  lastSuccessAt: string | null;
  pendingWipe: string[] | 'all' | null;
  /** Messages the workflow could not act on (an invalid forceWipe signal, a signal it does not know), newest last. */
  notices: string[];
}

/** Tenant settings the workflow needs to make decisions (no connection details). */
export interface TenantPolicy {
  pollIntervalMs: number;
  retentionMs: number;
  onSourceRestore: 'repopulate' | 'pause';
}

/** The defaults of the tenants file, which are also what a workflow assumes before it has read the file. */
export const DEFAULT_POLICY: Readonly<TenantPolicy> = {
  pollIntervalMs: 5_000,
  retentionMs: 7 * 24 * 3600 * 1000,
  onSourceRestore: 'repopulate',
};

export type PopulateReason =
  | 'new table'
  | 'never populated'
  | 'schema replaced'
  | 'column added'
  | 'tracking expired'
  | 'source restored'
  | 'no sync within retention'
  | 'forced wipe'
  | 'periodic refresh';

export interface TablePlan {
  name: string;
  /**
   * `populate`: needs its rows (again); `mirror`: continues from its LSN; `failed`: bootstrap could not prepare it
   * (see `failure`); `wait`: it is waiting out a failure's backoff, and bootstrap left it alone.
   */
  action: 'populate' | 'mirror' | 'failed' | 'wait';
  mode?: TableMode;
  /** For a table mirrored by refresh: when its next refresh is due (epoch ms). */
  refreshDueAt?: number;
  notes?: string[];
  failure?: { type: string; message: string };
  /** The source's row estimate, for tables to populate: the largest go first, so the lanes finish together. */
  estimatedRows?: number;
  reason?: PopulateReason;
  detail?: string;
}

export interface TenantPlan {
  policy: TenantPolicy;
  tables: TablePlan[];
  skipped: { name: string; reason: string }[];
  /** Mirror tables dropped because their source table is gone. */
  dropped: string[];
  /** Set when the source looks restored (version went back or fingerprint changed). */
  sourceRestored: string | null;
}

export interface PopulateResult {
  table: string;
  rows: number;
  lsn: string;
  resumed: boolean;
  durationMs: number;
}

export interface SessionInput {
  /** The tables the session keeps up to date from their change tracking. */
  tables: string[];
  /** Other tables the tenant has at the source (refreshed, failed, waiting): their presence is no news. */
  others?: string[];
  maxDurationMs: number;
}

/** Why a sync session handed control back. Restores, expired tracking and incompatible schemas are typed failures instead. */
export type SessionEndReason = 'timeLimit' | 'tablesChanged' | 'schemaChanged';

/** Per-table figures as the mirror's `_mirror_state` records them. */
export type TableFigures = Pick<TableStatus, 'name' | 'lsn' | 'rows' | 'lastSyncAt'>;

export interface SessionResult {
  reason: SessionEndReason;
  detail: string | null;
  /** Tables the workflow must repopulate (schemaChanged: an added column to backfill). */
  tables: string[];
  cycles: number;
  changesApplied: number;
  /** Epoch ms of the last successful cycle, if any. */
  lastSuccessAt: number | null;
  tableStatus: TableFigures[];
}

/** What the sync session heartbeats: live progress for the Temporal UI. */
export interface SessionHeartbeat {
  cycles: number;
  changesApplied: number;
  lastCycleAt: string | null;
  lastSuccessAt: number | null;
  tables: TableFigures[];
}

/**
 * What a population heartbeats: progress for the Temporal UI. Metadata only — where to resume (the last copied
 * key, which is tenant data) is kept in the mirror, beside the shadow it describes.
 */
export interface PopulateHeartbeat {
  table: string;
  version: string;
  rows: number;
  bytes: number;
}

export interface WipeInput {
  tables: string[] | 'all';
  reason: string;
}
