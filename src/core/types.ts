/**
 * The contract between the two sides of a mirror. Everything above the adapters (activities, workflow, CLI)
 * speaks only these types, so it never knows which database it talks to.
 *
 * Row data crosses the boundary as PostgreSQL's COPY text format (one line per row, tab-separated, `\N` for
 * NULL, backslash escapes; see src/core/copy-text.ts). PostgreSQL adapters pass it through untouched, which is
 * what makes PostgreSQL → PostgreSQL as fast as a raw COPY pipe; SQL Server adapters encode and decode it.
 */
import type { Readable } from 'node:stream';
import type { CycleCounts } from '../../contract/payloads';

/** A change-tracking version (PostgreSQL: a commit-safe xid8 horizon; SQL Server: CHANGE_TRACKING_CURRENT_VERSION). Decimal string: 64-bit values do not fit a JS number. */
export type Version = string;

/** Logical column types both sides understand. Each adapter maps its native types to and from these. */
export type LogicalType =
  | { kind: 'boolean' }
  | { kind: 'int8' } // 0..255 (SQL Server tinyint)
  | { kind: 'int16' }
  | { kind: 'int32' }
  | { kind: 'int64' }
  | { kind: 'decimal'; precision?: number; scale?: number }
  | { kind: 'money' }
  | { kind: 'float32' }
  | { kind: 'float64' }
  | { kind: 'string'; length?: number; fixed?: boolean }
  | { kind: 'binary'; length?: number; fixed?: boolean }
  | { kind: 'date' }
  | { kind: 'time'; precision?: number }
  | { kind: 'timetz'; precision?: number }
  | { kind: 'timestamp'; precision?: number }
  | { kind: 'timestamptz'; precision?: number }
  | { kind: 'interval' }
  | { kind: 'uuid' }
  | { kind: 'json' }
  | { kind: 'jsonb' }
  | { kind: 'xml' }
  | { kind: 'array'; element: LogicalType }
  /** A type with no portable equivalent, kept by name; the same dialect recreates it, the other stores its text form. */
  | { kind: 'native'; dialect: Dialect; name: string };

export type Dialect = 'postgres' | 'mssql';

export interface ColumnSchema {
  name: string;
  type: LogicalType;
  nullable: boolean;
}

/** A table's shape as received by the mirror. Column order is the order of fields in the row stream. */
export interface TableSchema {
  /** Name the mirror uses: `schema.table` at the source, with `public.`/`dbo.` dropped. */
  name: string;
  /** Source-side schema and table, for the adapter that reads it. */
  source: { schema: string; table: string };
  columns: ColumnSchema[];
  /**
   * The key the mirror uses (its primary key), in key order: the source's primary key, or a unique index over
   * NOT NULL columns standing in for one (`keyIndex` names it). Empty for a table without either: such a table
   * has no change tracking and is mirrored by periodic refresh.
   */
  primaryKey: string[];
  /** The unique index the key comes from, when the table has no primary key. */
  keyIndex?: string;
}

/** A source table that cannot be mirrored, and why (for status). */
export interface SkippedTable {
  name: string;
  reason: string;
}

export interface SourceTables {
  tables: TableSchema[];
  skipped: SkippedTable[];
  /** An earlier listing, given again (ListOptions.reuse): DDL committed since may not be in it yet. */
  reused?: boolean;
}

/** Identifies one incarnation of a source database. A change means it was restored or rebuilt. */
export interface SourceFingerprint {
  [component: string]: string;
}

/** Per-table tracking facts read at one instant. */
export interface TrackingInfo {
  table: string;
  /** Changes below this version are gone (tracking re-enabled, TRUNCATE, retention cleanup). */
  minValidVersion: Version;
}

/** A consistent read of the source: one snapshot, one current version. */
export interface SourceSnapshot {
  readonly version: Version;
  readonly fingerprint: SourceFingerprint;
  minValidVersion(table: TableSchema): Promise<Version | null>;
  /**
   * The fingerprint to record beside this table's LSN: the source's, plus components that identify this table's
   * tracking incarnation (keys prefixed `table.`; SQL Server: when Change Tracking began for the table). A changed
   * `table.` component means the table's tracked history restarted: its changes since the LSN may be gone.
   */
  tableFingerprint(table: TableSchema): Promise<SourceFingerprint>;
  /**
   * Net changes of one table with `fromVersion <= change < version`, one line per key, as COPY text:
   * first field `U` (the row exists now: upsert these values) or `D` (it does not: delete this key),
   * then the table's columns in schema order (for `D`, non-key fields are `\N`).
   */
  changes(table: TableSchema, fromVersion: Version): Readable;
  /**
   * About how much `changes(table, fromVersion)` would return, asked after the continuity checks: the tracked
   * changes in range (a row changed twice counts twice), counted up to `limit`. 0 only when it certainly returns
   * nothing; tracking that cannot answer counts `limit`. A source without a cheap answer leaves it out (every
   * table is then read, one after another).
   */
  pendingChanges?(table: TableSchema, fromVersion: Version, limit: number): Promise<number>;
  /** Every row with key greater than `afterKey` (all rows when absent), in key order, as COPY text (or `format`). */
  rows(table: TableSchema, afterKey?: KeyValues, format?: RowFormat): Readable;
  /** The formats, best first, this snapshot can stream the table's rows in; absent: COPY text only. */
  rowFormats?(table: TableSchema): RowFormat[];
  close(): Promise<void>;
}

/**
 * How a population's rows travel: COPY text (every adapter reads and writes it), or PostgreSQL's binary COPY
 * (both ends PostgreSQL, every column of a type both read and write alike; src/postgres/binary-copy.ts).
 */
export type RowFormat = 'text' | 'pg-binary';

/** A snapshot other connections can open too, seeing exactly what it sees (PostgreSQL: an exported snapshot). */
export interface ShareableSnapshot extends SourceSnapshot {
  /** `count` more snapshots on their own connections that see exactly what this one sees. Close each. */
  siblings(count: number): Promise<ShareableSnapshot[]>;
}

/**
 * A snapshot whose row reads can be split: one large table read by several connections at once, all seeing
 * exactly this snapshot (PostgreSQL: an exported snapshot), each over its own key range.
 */
export interface SplittableSnapshot extends ShareableSnapshot {
  /**
   * Up to `parts - 1` keys, ascending, that cut the table into ranges of about equal row counts, from a sample
   * (cheap: a table's worth of statistics, not a scan). Empty when the table cannot be split (no key, a key
   * compared as text, too few rows sampled). The range bounds compare keys as `rows` orders them.
   */
  rangeCuts(table: TableSchema, parts: number): Promise<KeyValues[]>;
  /** Rows with `range.after < key <= range.upTo` (either end open when absent), in key order, as COPY text (or `format`). */
  rowsInRange(table: TableSchema, range: KeyRange, format?: RowFormat): Readable;
  /** `count` more snapshots on their own connections that see exactly what this one sees. Close each. */
  siblings(count: number): Promise<SplittableSnapshot[]>;
}

/** Primary key values of one row, as their COPY text fields (decoded). */
export type KeyValues = (string | null)[];

/**
 * Which tables a tenant mirrors, by mirror name. `prefixes`, when set, are literal prefixes every admitted name
 * starts with: a source may leave every other relation unread. `key`, when set, names the rules: two filters with
 * one key admit the same names (so a listing of one may stand for the other).
 */
export type TableFilter = ((name: string) => boolean) & { prefixes?: readonly string[]; key?: string };

export interface ListOptions {
  /**
   * The source may answer with its last listing of a filter with the same key, when it can tell that nothing a
   * listing reads has changed since (a session lists every cycle; DDL is rare). The answer then says `reused`.
   */
  reuse?: boolean;
}

/** A source's catalog: which tables there are and their shapes. */
export interface SourceCatalog {
  /** Cheap round trip; throws a typed failure on bad credentials or an unreachable server. */
  ping(): Promise<void>;
  /** Tables and their schemas, filtered by the tenant's include/exclude rules. */
  listTables(filter: TableFilter, opts?: ListOptions): Promise<SourceTables>;
  /** A rough row count (statistics), for progress only. */
  estimateRows(table: TableSchema): Promise<number>;
}

/** A source's change tracking: installed per table when it is first mirrored, and kept within its retention. */
export interface SourceTracking {
  /** Idempotent: installs tracking for the table if absent. Returns true when it was (re)enabled now. */
  enableTracking(table: TableSchema, retentionMs: number): Promise<boolean>;
  /** Deletes tracking entries older than the retention and raises min valid versions accordingly. */
  cleanup(retentionMs: number): Promise<void>;
  /**
   * Removes change tracking from every tracked table that `select` names (by its mirror name: tables dropped at
   * the source included), so nothing of ours stays on a table no longer mirrored. Returns the names untracked.
   * `removeUnused` (the operator's untrack, never a session: other tenants may be setting up tracking in the same
   * database meanwhile) also removes what tracking shares once no table is tracked.
   */
  untrack(select: (name: string) => boolean, opts?: { removeUnused?: boolean }): Promise<string[]>;
}

/** A source's consistent reads of versions, rows and changes. */
export interface SourceReads {
  /** Opens a consistent snapshot (REPEATABLE READ / SNAPSHOT) for reading versions, rows and changes. */
  snapshot(): Promise<SourceSnapshot>;
}

export interface ChangeSource extends SourceCatalog, SourceTracking, SourceReads, SourceComparison, SourcePreflight {
  /**
   * Whether a snapshot opened now would find changes of these tables at or above `since` (the last snapshot's
   * version): true, false, or null when the source cannot tell cheaply right now. A source without the check
   * leaves it out. Asked between polls, so it must be far cheaper than a cycle.
   */
  changesPending?(tables: TableSchema[], since: Version): Promise<boolean | null>;
  close(): Promise<void>;
}

/** What the mirror stores about one table, beside its data. */
export interface MirrorTableState {
  /** A column was added in place since the table was populated: its rows need the new column's values. */
  needsBackfill?: boolean;
  table: string;
  lsn: Version | null;
  schemaHash: string | null;
  fingerprint: SourceFingerprint | null;
  populatedAt: string | null;
  lastSyncAt: string | null;
  rows: number | null;
}

export type SchemaApplyResult = (
  | { outcome: 'created' | 'unchanged' }
  | { outcome: 'altered'; changes: string[]; needsBackfill: boolean }
  | { outcome: 'incompatible'; reason: string }
) & {
  /** How the mirror stores columns it cannot store as received (a type it does not have is stored as text). */
  notes?: string[];
};

/**
 * A writer's claim on a scope of the mirror (the tenant's sync session, one table's population). Taking a fence
 * ends every older claim: a write under an older one fails (FailureType.Fenced) instead of committing.
 */
export interface Fence {
  scope: string;
  epoch: string;
}

export interface PopulationProgress {
  rows: number;
  bytes: number;
  lastKey: KeyValues | null;
}

export interface ApplyResult {
  /** Rows written from `U` lines: inserts + updates. */
  upserts: number;
  /** `U` lines whose key the mirror did not have. */
  inserts: number;
  /** `U` lines that replaced a row the mirror had. */
  updates: number;
  /** Rows a `D` line removed (a delete of a key the mirror does not hold counts nothing). */
  deletes: number;
  bytes: number;
}

/** What an adapter is built from: the connection comes from configuration, the tenant id only names errors. */
export interface SourceOptions {
  url: string;
  tenant: string;
  /** Pool size (each adapter has its default). */
  maxConnections?: number;
}

export interface MirrorOptions extends SourceOptions {
  /** The tenant's schema in the mirror database. */
  schema: string;
  /** The partner's SQL for a table at an event (mirror.hooks); none when absent. */
  hooks?: MirrorHooks;
}

/** When the partner's hook SQL runs: the mirror created the table, or swapped a population in. */
export type HookEvent = 'afterCreate' | 'afterPopulate';

/**
 * The partner's SQL templates (`{{table}}`, `{{schema}}` placeholders) that apply to one table at one event, in
 * configuration order. The adapter expands and runs them inside the transaction that created or swapped the table.
 */
export type MirrorHooks = (event: HookEvent, table: string) => HookStatement[];

/** One hook that applies to a table at an event: its SQL template and where it is configured (for messages). */
export interface HookStatement {
  /** e.g. `mirror.hooks[2].afterCreate`. */
  label: string;
  sql: string;
}

/**
 * One key range of a population split into ranges (`after < key <= upTo`, either end open when absent), copied
 * on its own connection and resumed on its own after its `lastKey`.
 */
export interface ShadowRange extends KeyRange {
  lastKey: KeyValues | null;
  rows: number;
  bytes: number;
  done: boolean;
}

/** A population's progress, kept beside its shadow table so a retry can resume after the last copied key. */
export interface ShadowProgress {
  /** A split population: each range's own progress (then `lastKey` below is unused, and `rows` and `bytes` are the ranges' sums). */
  ranges?: ShadowRange[];
  /** The source version the population reads at (a resumed attempt must read at the same one). */
  version?: Version;
  /** The table the shadow is for (TableSchema.name); absent in markers written before it was recorded. */
  table?: string;
  schemaHash: string;
  lastKey: KeyValues | null;
  rows: number;
  /** Bytes copied so far, over every attempt (absent in markers written before it was recorded). */
  bytes?: number;
  /** When the population began (ISO 8601), for its duration in `_mirror_log`. */
  startedAt?: string;
}

/** The mirror's record of progress: `_mirror_state`, one row per table. */
export interface MirrorStateStore {
  ping(): Promise<void>;
  /** Creates the tenant's schema and `_mirror_state` if absent. */
  ensureState(): Promise<void>;
  /** Claims `scope` for `holder` (names the worker and attempt, for people reading the mirror). */
  takeFence(scope: string, holder: string): Promise<Fence>;
  readState(): Promise<MirrorTableState[]>;
  /** Populations in progress: the rows each shadow has committed so far. */
  readPopulations(): Promise<{ table: string; rows: number }[]>;
  /** Deletes `_mirror_log` rows older than the retention; returns how many went. */
  pruneLog(retentionMs: number): Promise<number>;
  /** Per table, the newest `_mirror_log` sync row of the last day: what its last cycle that changed something did. */
  readLastCycles(): Promise<({ table: string } & CycleCounts)[]>;
}

/** The mirror tables' shapes, and their removal. Only tables the mirror created are ever altered or dropped. */
export interface MirrorSchema {
  /**
   * The identity under which this mirror stores a table (two source tables with one key would collide: the same
   * relation after name fitting, or case folding where the mirror compares names without case). Throws BadConfig
   * for a name reserved by the mirror.
   */
  relationKey(table: string): string;
  /**
   * Makes the mirror table match the schema. Compatible differences are altered in place; an incompatible one
   * drops the table and its state (so it will be repopulated) and reports it. A table created (or re-created)
   * runs its `afterCreate` hooks in the same transaction.
   */
  applySchema(schema: TableSchema): Promise<SchemaApplyResult>;
  /** Drops the table and its state (wipe), recording a `wipe` row with `reason` in `_mirror_log`. */
  dropTable(table: string, reason?: string): Promise<void>;
  /** Stops owning the table: its state goes, the table stays as it is (the partner's from now on). */
  release(table: string): Promise<void>;
  /** Drops every mirrored table, shadow and state row of the tenant (one `wipe` row per table in `_mirror_log`). */
  wipeAll(reason?: string): Promise<void>;
}

/** Population: a shadow table filled in committed chunks, then swapped in with its LSN. */
export interface MirrorBulkLoad {
  /**
   * Streams rows into the table's shadow, committing every `chunkBytes`, and calls `onChunk` after each commit.
   * With `resume`, keeps what the shadow already holds (a previous attempt) instead of starting over. `format`
   * (default text) must be one `rowFormats` names.
   */
  copyIntoShadow(
    schema: TableSchema,
    rows: Readable,
    opts: { resume: boolean; version: Version; chunkBytes: number; fence: Fence; onChunk: (progress: PopulationProgress) => void; format?: RowFormat },
  ): Promise<PopulationProgress>;
  /** The row formats, best first, this mirror can load the table's shadow from; absent: COPY text only. */
  rowFormats?(schema: TableSchema): RowFormat[];
  /** The progress of the shadow built for this schema (to resume from), or null when there is none. */
  shadowProgress(schema: TableSchema): Promise<ShadowProgress | null>;
  /**
   * A mirror that can fill one shadow over several connections at once. `planShadow` starts a population split
   * into `ranges` (an empty shadow whose marker holds them; a resumable one for the same schema, version and ranges
   * is kept) and returns its progress; then each range is streamed by `copyRangeIntoShadow`, concurrently, and
   * marked done when its stream ends. Each commit records its range's progress in the same transaction.
   */
  planShadow?(schema: TableSchema, opts: { resume: boolean; version: Version; fence: Fence; ranges: KeyRange[] }): Promise<ShadowProgress>;
  copyRangeIntoShadow?(
    schema: TableSchema,
    range: number,
    rows: Readable,
    opts: { version: Version; chunkBytes: number; fence: Fence; onChunk: (progress: PopulationProgress) => void; format?: RowFormat },
  ): Promise<PopulationProgress>;
  /**
   * Atomically replaces the table with its shadow and records the LSN, schema hash and fingerprint, and a
   * `populate` row in `_mirror_log`. What the partner created on the table it replaces (indexes, grants; see the
   * adapter) is recreated on the new one, and the `afterPopulate` hooks run, all in the same transaction.
   */
  swapInShadow(schema: TableSchema, lsn: Version, fingerprint: SourceFingerprint, fence: Fence): Promise<{ rows: number }>;
}

/** Change batches, each with the LSN it brings the table to. */
export interface MirrorChangeApply {
  /**
   * Applies a change stream (see SourceSnapshot.changes) in byte-bounded batches; only the transaction of the
   * last batch moves the LSN to `toVersion`, and only from `fromVersion` (every batch checks the LSN is still
   * `fromVersion` and the fence still held, so a stale writer can neither move the LSN back nor commit older rows
   * after newer ones). An empty stream still records `toVersion` and `lastSyncAt`.
   */
  applyChanges(
    schema: TableSchema,
    changes: Readable,
    opts: { fromVersion: Version; toVersion: Version; fingerprint: SourceFingerprint; batchBytes: number; fence: Fence },
  ): Promise<ApplyResult>;
}

export interface Mirror extends MirrorStateStore, MirrorSchema, MirrorBulkLoad, MirrorChangeApply, MirrorComparison, MirrorPreflight {
  close(): Promise<void>;
}

// ---- Comparison (tenant-mirror verify): both sides read one table range by range, inside one snapshot each ----

/**
 * Keys greater than `after` (from the first key when absent) and at most `upTo` (to the last key when absent), in
 * the comparison order: each adapter orders keys by their values, string keys by code point (PostgreSQL
 * `COLLATE "C"`, SQL Server a binary collation) whatever the database's collation, so that both sides put a key in
 * the same range. Values are COPY text fields (decoded), as KeyValues always are.
 */
export interface KeyRange {
  after?: KeyValues;
  upTo?: KeyValues;
}

/**
 * How each row is hashed. Both sides of a comparison must use the same form:
 * - `pg-hashtext`: computed by PostgreSQL (hashtextextended of the row's record text, every column in the mirror's
 *   type), so nothing but the digests leaves the server; PostgreSQL ↔ PostgreSQL only;
 * - `canonical`: computed by tenant-mirror from each row's COPY text fields, canonicalised per logical type
 *   (src/core/row-digest.ts), so that a PostgreSQL and a SQL Server side agree; every row crosses the network.
 */
export type DigestForm = 'pg-hashtext' | 'canonical';

/** Rows in a range and the sum of their 64-bit row hashes: order-independent, and exact (decimal string). */
export interface RangeDigest {
  rows: number;
  sum: string;
}

/** One row of a range: its key (COPY text fields) and its row hash (decimal string). */
export interface RowHash {
  key: KeyValues;
  hash: string;
}

export interface DigestOptions {
  form: DigestForm;
  /** Keys to leave out (on a live table: the keys the source changed since the mirror's LSN). */
  exclude?: KeyValues[];
}

/** One table read for comparison, on either side. Only tables with a key can be split; a keyless one is one range. */
export interface TableRangeReads {
  /** The digest forms this side can compute, preferred first. */
  readonly digestForms: readonly DigestForm[];
  /** Up to `parts - 1` keys, ascending, that cut `range` into parts of about equal row counts (none for a small range). */
  splitPoints(table: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]>;
  /** One digest per range, in the order given. The ranges must not overlap. */
  rangeDigests(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]>;
  /** Key and hash of every row in `ranges`, in no particular order. */
  rowHashes(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]>;
}

/** A source snapshot a table can also be compared in (see SourceComparison). */
export interface ComparableSnapshot extends SourceSnapshot, TableRangeReads {}

export interface SourceComparison {
  /** A snapshot (as SourceReads.snapshot) that can also compare tables; its `changes` name the keys that moved. */
  comparableSnapshot(): Promise<ComparableSnapshot>;
}

/**
 * One mirror table read in one snapshot that also holds its state row: the rows read are exactly those the table
 * held at `state.lsn` (plus, at most, the first batches of a change cycle in flight, whose keys the source's
 * changes since that LSN include).
 */
export interface MirrorTableSnapshot extends TableRangeReads {
  /** The table's `_mirror_state` row as of the snapshot; null when the mirror does not hold the table. */
  readonly state: MirrorTableState | null;
  /** False when the reads are not one snapshot (the database does not allow snapshot reads): the caller re-reads the state to see whether it moved. */
  readonly consistent: boolean;
  close(): Promise<void>;
}

export interface MirrorComparison {
  compareSnapshot(table: TableSchema): Promise<MirrorTableSnapshot>;
}

// ---- Preflight (tenant-mirror check): read-only tests of what each side will need ----

/** One finding of a preflight check. `blocker`: mirroring cannot work (or that table cannot) until it is fixed. */
export interface Finding {
  level: 'ok' | 'warn' | 'blocker';
  /** What it is about: `source`, `mirror`, or `table <name>`. */
  subject: string;
  message: string;
}

/** What the preflight needs to know about the tenant's tables. */
export interface PreflightTables {
  /** The tables that will be mirrored: with a key (tracked) or without (refreshed whole). */
  tables: TableSchema[];
  /** Retention the tenant asks of change tracking. */
  retentionMs: number;
}

export interface SourcePreflight {
  /** Read-only: the server, the rights tracking and reading need, per table. Changes nothing. */
  preflight(plan: PreflightTables): Promise<Finding[]>;
}

export interface MirrorPreflight {
  /**
   * Read-only: the schema and its owner, the rights the mirror needs, what `_mirror_state` registers, and tables
   * of the partner's own whose names the tenant's tables would take. Changes nothing.
   */
  preflight(plan: PreflightTables): Promise<Finding[]>;
}
