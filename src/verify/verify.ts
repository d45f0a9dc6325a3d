/**
 * `tenant-mirror verify`: every mirrored table of a tenant compared with its source, without copying it, while both
 * stay live.
 *
 * Live tables. Each table is compared at the version its mirror holds: the mirror side is read in one snapshot
 * together with the table's LSN (see MirrorTableSnapshot), opened before the source snapshot, so the source is at or
 * past that LSN. A key can then differ for two reasons only: the mirror is wrong, or the source changed the key
 * after the LSN — and the source's change tracking names those keys (`changes(table, lsn)` in the same snapshot).
 * They are left out of the comparison on both sides. Whatever differs is looked at once more in new snapshots
 * (only the small ranges where it was found): a key is reported only if it differs both times, so a state caught
 * in passing (a mirror that cannot read in one snapshot, a change cycle in flight) is not mistaken for a fault.
 * When the mirror's LSN moves during an inconsistent read, or the mirror is too far behind to list its missing
 * changes, the table is retried, then reported as "could not get a stable comparison".
 *
 * Keyless tables (refreshed whole) are compared whole: one count and digest per side, with the source as it is
 * now (a keyless table has no change tracking, so changes since its last refresh show as a difference).
 */
import { decodeLine, readLines } from '../core/copy-text';
import { FailureType, MirrorError, type FailureTypeName } from '../core/errors';
import { schemaHash } from '../core/schema-hash';
import type { ChangeSource, ComparableSnapshot, DigestForm, KeyValues, Mirror, MirrorTableSnapshot, TableSchema, Version } from '../core/types';
import type { TenantConfig } from '../config/schema';
import { selectTables } from '../selection';
import { commonForm, compareKeyed, compareWhole, keyIdentity, recompare, DEFAULT_SETTINGS, type CompareSettings, type Difference } from './compare';

export type TableVerdict =
  | {
      table: string;
      verdict: 'equal';
      rows: number;
      keyless: boolean;
      /** Keys the source changed since the mirror's LSN: left out of the comparison (the mirror has yet to get them). */
      leftOut: number;
      ms: number;
    }
  | {
      table: string;
      verdict: 'differs';
      /** Differing keys (null for a keyless table, compared whole). */
      keys: number | null;
      /** The key's column names, for the examples. */
      keyColumns: string[];
      examples: Difference[];
      sourceRows: number;
      mirrorRows: number;
      keyless: boolean;
      leftOut: number;
      ms: number;
    }
  | { table: string; verdict: 'unstable'; reason: string; ms: number }
  | { table: string; verdict: 'not-compared'; reason: string; ms: number };

export interface VerifyReport {
  tenant: string;
  tables: TableVerdict[];
  /** Tables the configuration includes that cannot be mirrored, and why (not compared). */
  skipped: { name: string; reason: string }[];
}

export interface VerifyOptions {
  /** Only these tables (mirror names), default every mirrored one. */
  tables?: string[];
  /** Force a digest form (tests); default the first one both sides compute. */
  form?: DigestForm;
  /** Examples per table. */
  examples?: number;
  settings?: CompareSettings;
  /** Called as each table is done (the CLI prints as it goes). */
  onTable?: (verdict: TableVerdict) => void;
}

export interface VerifySides {
  source: ChangeSource;
  mirror: Mirror;
}

/** At most this many keys changed since the mirror's LSN are left out; more means the mirror is far behind. */
export const MAX_EXCLUDED_KEYS = 200_000;
/** Attempts per table when the mirror moved under an inconsistent read. */
const ATTEMPTS = 3;

export async function verifyTenant(tenant: TenantConfig, sides: VerifySides, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const { source, mirror } = sides;
  await Promise.all([source.ping(), mirror.ping()]);
  const selection = selectTables(await source.listTables(() => true), tenant, mirror);
  let tables = selection.tables;
  if (opts.tables?.length) {
    const byName = new Map(tables.map((t) => [t.name, t]));
    const unknown = opts.tables.filter((n) => !byName.has(n));
    if (unknown.length) {
      throw new MirrorError(
        FailureType.BadConfig,
        `tenant ${tenant.id} mirrors no table ${unknown.map((n) => JSON.stringify(n)).join(', ')} (it mirrors: ${[...byName.keys()].join(', ') || 'none'})`,
        { tenant: tenant.id },
      );
    }
    tables = opts.tables.map((n) => byName.get(n)!);
  }
  const verdicts: TableVerdict[] = [];
  for (const table of tables) {
    const verdict = await verifyTable(table, sides, opts);
    verdicts.push(verdict);
    opts.onTable?.(verdict);
  }
  return { tenant: tenant.id, tables: verdicts, skipped: selection.skipped };
}

/** Failures that concern this table's comparison only: reported as its verdict, the other tables go on. */
const TABLE_SCOPED = new Set<FailureTypeName>([
  FailureType.SourceBusy,
  FailureType.MirrorBusy,
  FailureType.TrackingExpired,
  FailureType.SourceRestored,
  FailureType.TableFailed,
]);

export async function verifyTable(table: TableSchema, sides: VerifySides, opts: VerifyOptions = {}): Promise<TableVerdict> {
  const started = Date.now();
  const ms = (): number => Date.now() - started;
  try {
    for (let attempt = 1; ; attempt++) {
      const outcome = await attemptTable(table, sides, opts);
      if (outcome.kind === 'verdict') return { ...outcome.verdict, ms: ms() } as TableVerdict;
      if (attempt >= ATTEMPTS) return { table: table.name, verdict: 'unstable', reason: `could not get a stable comparison: ${outcome.reason}`, ms: ms() };
    }
  } catch (err) {
    if (err instanceof MirrorError && TABLE_SCOPED.has(err.type)) {
      return { table: table.name, verdict: 'unstable', reason: `could not get a stable comparison: ${err.message}`, ms: ms() };
    }
    throw err;
  }
}

/** A verdict before its time is known. */
type PendingVerdict = TableVerdict extends infer V ? (V extends unknown ? Omit<V, 'ms'> : never) : never;

type Attempt = { kind: 'verdict'; verdict: PendingVerdict } | { kind: 'retry'; reason: string };

/** One look: both snapshots, the keys that moved, the comparison; then, for what differs, a second look. */
async function attemptTable(table: TableSchema, sides: VerifySides, opts: VerifyOptions): Promise<Attempt> {
  const first = await withSnapshots(table, sides, async (look) => {
    const problem = notComparable(table, look.mirror);
    if (problem) return { kind: 'verdict' as const, verdict: { table: table.name, verdict: 'not-compared' as const, reason: problem } };
    const form = opts.form ?? commonForm(look.source.digestForms, look.mirror.digestForms);
    if (form === null) {
      return { kind: 'verdict' as const, verdict: { table: table.name, verdict: 'not-compared' as const, reason: 'source and mirror share no digest form' } };
    }
    const pair = { source: look.source, mirror: look.mirror };
    if (table.primaryKey.length === 0) {
      const whole = await compareWhole(table, pair, { form });
      return { kind: 'whole' as const, form, whole };
    }
    const exclude = await movedKeys(look.source, table, look.mirror.state!.lsn!);
    if (exclude === null) return { kind: 'verdict' as const, verdict: behind(table) };
    const keyed = await compareKeyed(table, pair, { form, exclude }, opts.settings ?? DEFAULT_SETTINGS);
    return { kind: 'keyed' as const, form, keyed, leftOut: exclude.length };
  });
  if (first.kind === 'verdict') return first;
  if (first.moved) return { kind: 'retry', reason: 'the mirror moved while it was read (it cannot read in one snapshot)' };
  if (first.kind === 'whole') {
    const { whole } = first;
    return {
      kind: 'verdict',
      verdict: whole.equal
        ? { table: table.name, verdict: 'equal', rows: whole.sourceRows, keyless: true, leftOut: 0 }
        : { table: table.name, verdict: 'differs', keys: null, keyColumns: [], examples: [], sourceRows: whole.sourceRows, mirrorRows: whole.mirrorRows, keyless: true, leftOut: 0 },
    };
  }
  const { keyed, form, leftOut } = first;
  const equal: PendingVerdict = { table: table.name, verdict: 'equal', rows: keyed.sourceRows, keyless: false, leftOut };
  if (keyed.differences.size === 0) return { kind: 'verdict', verdict: equal };

  // The second look, in new snapshots, at the ranges where differences were found: only what differs both times counts.
  const second = await withSnapshots(table, sides, async (look) => {
    const problem = notComparable(table, look.mirror);
    if (problem) return { kind: 'retry' as const, reason: problem };
    const exclude = await movedKeys(look.source, table, look.mirror.state!.lsn!);
    if (exclude === null) return { kind: 'verdict' as const, verdict: behind(table) };
    const again = await recompare(table, { source: look.source, mirror: look.mirror }, keyed.fetched, { form, exclude }, opts.settings ?? DEFAULT_SETTINGS);
    return { kind: 'again' as const, again };
  });
  if (second.kind === 'retry' || second.kind === 'verdict') return second;
  if (second.moved) return { kind: 'retry', reason: 'the mirror moved while it was read (it cannot read in one snapshot)' };
  const confirmed = [...keyed.differences.keys()].filter((id) => second.again.has(id)).map((id) => second.again.get(id)!);
  if (confirmed.length === 0) return { kind: 'verdict', verdict: equal };
  return {
    kind: 'verdict',
    verdict: {
      table: table.name,
      verdict: 'differs',
      keys: confirmed.length,
      keyColumns: table.primaryKey,
      examples: confirmed.slice(0, opts.examples ?? 5),
      sourceRows: keyed.sourceRows,
      mirrorRows: keyed.mirrorRows,
      keyless: false,
      leftOut,
    },
  };
}

/** Too many changes to leave out: the mirror is catching up (or paused); compare it once it has. */
function behind(table: TableSchema): PendingVerdict {
  return {
    table: table.name,
    verdict: 'unstable',
    reason: `could not get a stable comparison: the source changed more than ${MAX_EXCLUDED_KEYS} keys since the mirror's LSN (the mirror is behind; verify again once it has caught up)`,
  };
}

interface Look {
  source: ComparableSnapshot;
  mirror: MirrorTableSnapshot;
}

/**
 * Opens the mirror's snapshot first, then the source's (so the source is at or past the mirror's LSN), runs `fn`,
 * closes both. `moved`: the mirror could not read in one snapshot and its LSN is no longer the one read.
 */
async function withSnapshots<T extends object>(table: TableSchema, sides: VerifySides, fn: (look: Look) => Promise<T>): Promise<T & { moved: boolean }> {
  const mirror = await sides.mirror.compareSnapshot(table);
  let source: ComparableSnapshot | null = null;
  try {
    source = await sides.source.comparableSnapshot();
    const result = await fn({ source, mirror });
    return { ...result, moved: mirror.consistent ? false : await lsnMoved(table, sides.mirror, mirror.state?.lsn ?? null) };
  } finally {
    await Promise.allSettled([mirror.close(), source?.close()]);
  }
}

async function lsnMoved(table: TableSchema, mirror: Mirror, before: Version | null): Promise<boolean> {
  const now = (await mirror.readState()).find((s) => s.table === table.name)?.lsn ?? null;
  return now !== before;
}

/** Why the mirror's copy cannot be compared now, or null. */
function notComparable(table: TableSchema, mirror: MirrorTableSnapshot): string | null {
  const state = mirror.state;
  if (!state) return 'the mirror does not hold this table yet';
  if (state.lsn === null) return 'not populated yet';
  if (state.needsBackfill) return 'a column added at the source awaits its values in the mirror (repopulation pending)';
  if (state.schemaHash !== schemaHash(table)) return "the mirror has not yet applied the source's current table shape";
  return null;
}

/**
 * The keys the source changed since `lsn` (its net changes, read in the same snapshot as the comparison), or null
 * when there are more than MAX_EXCLUDED_KEYS.
 */
async function movedKeys(source: ComparableSnapshot, table: TableSchema, lsn: Version): Promise<KeyValues[] | null> {
  const keyIndexes = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k));
  const keys = new Map<string, KeyValues>();
  // Leaving the stream before its end breaks the snapshot: the caller gives up on this one anyway.
  for await (const { line } of readLines(source.changes(table, lsn))) {
    const fields = decodeLine(line);
    const key = keyIndexes.map((i) => fields[i + 1] ?? null);
    keys.set(keyIdentity(table, key), key);
    if (keys.size > MAX_EXCLUDED_KEYS) return null;
  }
  return [...keys.values()];
}
