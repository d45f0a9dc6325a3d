/**
 * Key ranges as the comparison (tenant-mirror verify) uses them, independent of any SQL: ranges built from cut
 * points, and the cut points of a list of ranges, from which an adapter assigns each row to its range in one scan
 * (a binary search over the cut points written as nested CASE expressions: ~log2(n) key comparisons per row).
 */
import type { KeyRange, KeyValues, LogicalType } from './types';

export function sameKey(a: KeyValues | undefined, b: KeyValues | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The ranges that `cuts` (ascending) make of `range`: (after, c1], (c1, c2], …, (cn, upTo]. */
export function rangesBetween(range: KeyRange, cuts: KeyValues[]): KeyRange[] {
  const bounds: (KeyValues | undefined)[] = [range.after, ...cuts, range.upTo];
  const out: KeyRange[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push(bounded(bounds[i], bounds[i + 1]));
  return out;
}

function bounded(after: KeyValues | undefined, upTo: KeyValues | undefined): KeyRange {
  return { ...(after !== undefined ? { after } : {}), ...(upTo !== undefined ? { upTo } : {}) };
}

/**
 * One stretch of the key order: every key above the previous segment's `upTo` and at most this one's (the last
 * segment has none: to the end). `range` is the index of the caller's range it belongs to, or null for a gap
 * between them.
 */
export interface Segment {
  upTo?: KeyValues;
  range: number | null;
}

/**
 * The whole key order cut into segments by `ranges`, which must be ascending and not overlap. A gap before,
 * between or after them becomes a segment of its own (range null), so every key falls in exactly one segment.
 */
export function segmentsOf(ranges: KeyRange[]): Segment[] {
  const out: Segment[] = [];
  // The upper bound of the last segment so far; `started` false: nothing cut yet, the next one starts at the first key.
  let previous: KeyValues | undefined;
  let started = false;
  ranges.forEach((r, i) => {
    if (started && r.after === undefined) throw new Error('key ranges overlap: one after the first starts at the first key');
    if (r.after !== undefined && !(started && sameKey(previous, r.after))) out.push({ upTo: r.after, range: null });
    if (r.upTo === undefined && i !== ranges.length - 1) throw new Error('only the last key range may run to the last key');
    out.push(r.upTo === undefined ? { range: i } : { upTo: r.upTo, range: i });
    previous = r.upTo;
    started = true;
  });
  if (out.length === 0 || out[out.length - 1]!.upTo !== undefined) out.push({ range: null });
  return out;
}

/**
 * A binary search over the segments as nested conditionals: `atMost(bound)` is the condition "key <= bound" and
 * `leaf(range)` the value for a segment. With one segment there is no condition at all.
 */
export function bucketExpression(segments: Segment[], atMost: (bound: KeyValues) => string, leaf: (range: number | null) => string): string {
  const build = (lo: number, hi: number): string => {
    if (lo === hi) return leaf(segments[lo]!.range);
    const mid = (lo + hi) >> 1;
    return `CASE WHEN ${atMost(segments[mid]!.upTo!)} THEN ${build(lo, mid)} ELSE ${build(mid + 1, hi)} END`;
  };
  return build(0, segments.length - 1);
}

/**
 * Key columns of these kinds are compared by value; every other kind (strings, and types a mirror may keep only as
 * text) as text in code point order, by both adapters, so that both sides order keys alike.
 */
const BY_VALUE = new Set<LogicalType['kind']>([
  'boolean', 'int8', 'int16', 'int32', 'int64', 'decimal', 'money', 'float32', 'float64', 'binary',
  'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'uuid',
]);

export function comparedAsText(type: LogicalType): boolean {
  return !BY_VALUE.has(type.kind);
}
