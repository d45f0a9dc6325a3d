/**
 * Comparing one table between two sides that offer TableRangeReads, without copying it: the key order is cut into
 * ranges of about equal row counts; each side computes per range a row count and the sum of its row hashes; only
 * a range whose digests differ is cut again, until it is small enough to fetch its keys and row hashes from both
 * sides and name the keys that differ (missing in the mirror, extra in the mirror, value differs).
 *
 * Cost: one scan of each side for the first digests (plus a key-only scan of the source for the cuts), then work in
 * proportion to the differences: a range of `leafRows` rows per differing key, one extra level of cuts per
 * `splitParts`-fold of a range too big to fetch.
 *
 * Matching is by the keys' canonical text (src/core/row-digest.ts), across all the ranges fetched, so a key one side
 * puts in another range than the other side (orders that disagree) is still matched, never reported twice.
 */
import { canonicalFields } from '../core/row-digest';
import { rangesBetween } from '../core/key-ranges';
import type { DigestForm, DigestOptions, KeyRange, KeyValues, RowHash, TableRangeReads, TableSchema } from '../core/types';

export type DifferenceKind = 'missing' | 'extra' | 'value';

export interface Difference {
  /** The key as the side holding it sends it (the source's for `missing` and `value`, the mirror's for `extra`). */
  key: KeyValues;
  kind: DifferenceKind;
}

export interface CompareSettings {
  /** A differing range of at most this many rows (on either side) is fetched key by key. */
  leafRows: number;
  /** The first cut of the whole table: at most this many ranges. */
  firstParts: number;
  /** A differing range too big to fetch is cut into at most this many. */
  splitParts: number;
  /** Ranges per rowHashes call. */
  leavesPerFetch: number;
}

export const DEFAULT_SETTINGS: CompareSettings = { leafRows: 5_000, firstParts: 256, splitParts: 64, leavesPerFetch: 32 };

/** Levels of cuts at most: each cuts the splitting side's ranges `splitParts`-fold, so a few are plenty. */
const MAX_LEVELS = 16;

export interface KeyedComparison {
  sourceRows: number;
  mirrorRows: number;
  /** Every differing key, by its canonical identity. */
  differences: Map<string, Difference>;
  /** The small ranges fetched key by key, one list per level (each ascending): where a confirmation looks again. */
  fetched: KeyRange[][];
}

export interface Sides {
  source: TableRangeReads;
  mirror: TableRangeReads;
}

/** The identity of a key for matching: its canonical fields (the same value printed by either database). */
export function keyIdentity(table: TableSchema, key: KeyValues): string {
  const types = table.primaryKey.map((k) => table.columns.find((c) => c.name === k)!.type);
  return JSON.stringify(canonicalFields(types, key));
}

/** A table with a key: cut, digest, narrow, fetch; every differing key. */
export async function compareKeyed(table: TableSchema, sides: Sides, opts: DigestOptions, settings: CompareSettings = DEFAULT_SETTINGS): Promise<KeyedComparison> {
  const { source, mirror } = sides;
  let pending = rangesBetween({}, await source.splitPoints(table, {}, settings.firstParts));
  const result: KeyedComparison = { sourceRows: 0, mirrorRows: 0, differences: new Map(), fetched: [] };
  const matcher = new KeyMatcher(table);
  for (let level = 0; pending.length > 0; level++) {
    const [sd, md] = await Promise.all([source.rangeDigests(table, pending, opts), mirror.rangeDigests(table, pending, opts)]);
    if (level === 0) {
      result.sourceRows = sd.reduce((n, d) => n + d.rows, 0);
      result.mirrorRows = md.reduce((n, d) => n + d.rows, 0);
    }
    const leaves: KeyRange[] = [];
    const next: KeyRange[] = [];
    for (let i = 0; i < pending.length; i++) {
      const s = sd[i]!;
      const m = md[i]!;
      if (s.rows === m.rows && s.sum === m.sum) continue;
      const rows = Math.max(s.rows, m.rows);
      const range = pending[i]!;
      if (rows <= settings.leafRows || level >= MAX_LEVELS) {
        leaves.push(range);
        continue;
      }
      // Cut where the rows are: by the side that has more of them in this range.
      const bigger = s.rows >= m.rows ? source : mirror;
      const cuts = await bigger.splitPoints(table, range, Math.min(settings.splitParts, Math.ceil(rows / settings.leafRows)));
      if (cuts.length === 0) leaves.push(range);
      else next.push(...rangesBetween(range, cuts));
    }
    if (leaves.length) {
      result.fetched.push(leaves);
      await fetchAndMatch(table, sides, leaves, opts, settings, matcher);
    }
    pending = next;
  }
  result.differences = matcher.finish();
  return result;
}

/** Fetches the keys and row hashes of `levels` (ranges fetched before) again: the differing keys now. */
export async function recompare(table: TableSchema, sides: Sides, levels: KeyRange[][], opts: DigestOptions, settings: CompareSettings = DEFAULT_SETTINGS): Promise<Map<string, Difference>> {
  const matcher = new KeyMatcher(table);
  for (const leaves of levels) await fetchAndMatch(table, sides, leaves, opts, settings, matcher);
  return matcher.finish();
}

async function fetchAndMatch(table: TableSchema, sides: Sides, leaves: KeyRange[], opts: DigestOptions, settings: CompareSettings, matcher: KeyMatcher): Promise<void> {
  for (let i = 0; i < leaves.length; i += settings.leavesPerFetch) {
    const batch = leaves.slice(i, i + settings.leavesPerFetch);
    const [s, m] = await Promise.all([sides.source.rowHashes(table, batch, opts), sides.mirror.rowHashes(table, batch, opts)]);
    matcher.add(s, m);
  }
}

/**
 * Matches source rows with mirror rows by key identity. Only what does not match is kept between batches (a key
 * one side put in another batch is matched when it comes), so memory follows the differences, not the table.
 */
class KeyMatcher {
  private readonly onlySource = new Map<string, RowHash>();
  private readonly onlyMirror = new Map<string, RowHash>();
  private readonly changed = new Map<string, Difference>();

  constructor(private readonly table: TableSchema) {}

  add(source: RowHash[], mirror: RowHash[]): void {
    const mine = new Map(mirror.map((r) => [keyIdentity(this.table, r.key), r]));
    for (const s of source) {
      const id = keyIdentity(this.table, s.key);
      const m = mine.get(id) ?? this.onlyMirror.get(id);
      if (!m) {
        this.onlySource.set(id, s);
        continue;
      }
      mine.delete(id);
      this.onlyMirror.delete(id);
      if (m.hash !== s.hash) this.changed.set(id, { key: s.key, kind: 'value' });
    }
    for (const [id, m] of mine) {
      const s = this.onlySource.get(id);
      if (!s) {
        this.onlyMirror.set(id, m);
        continue;
      }
      this.onlySource.delete(id);
      if (m.hash !== s.hash) this.changed.set(id, { key: s.key, kind: 'value' });
    }
  }

  finish(): Map<string, Difference> {
    const out = new Map(this.changed);
    for (const [id, s] of this.onlySource) out.set(id, { key: s.key, kind: 'missing' });
    for (const [id, m] of this.onlyMirror) out.set(id, { key: m.key, kind: 'extra' });
    return out;
  }
}

export interface WholeComparison {
  sourceRows: number;
  mirrorRows: number;
  equal: boolean;
}

/** A table without a key: one digest per side over every row (duplicates counted). */
export async function compareWhole(table: TableSchema, sides: Sides, opts: DigestOptions): Promise<WholeComparison> {
  const [[s], [m]] = await Promise.all([sides.source.rangeDigests(table, [{}], opts), sides.mirror.rangeDigests(table, [{}], opts)]);
  return { sourceRows: s!.rows, mirrorRows: m!.rows, equal: s!.rows === m!.rows && s!.sum === m!.sum };
}

/** The first digest form both sides can compute (each lists its own preferred first; the source's order wins). */
export function commonForm(source: readonly DigestForm[], mirror: readonly DigestForm[]): DigestForm | null {
  return source.find((f) => mirror.includes(f)) ?? null;
}
