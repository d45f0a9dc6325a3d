/**
 * A large table populated over several connections at once: its key space is cut into ranges (from a sample of
 * the source table), each range is read on its own snapshot — all of them the same exported snapshot, so the
 * union is exactly the table at the population's version — and copied into the one shadow on its own mirror
 * connection. Each range commits its progress with its rows and resumes on its own after a crash; the shadow is
 * still swapped in once, with its LSN, when every range is done.
 */
import type { Context } from '@temporalio/activity';
import type { ChangeSource, Fence, KeyRange, KeyValues, Mirror, PopulationProgress, RowFormat, ShadowRange, SourceSnapshot, SplittableSnapshot, TableSchema, Version } from '../src/core/types';
import { interruptibleCopy, interruption } from './streams';
import { inLanes } from './lanes';

/** What a split needs from the mirror: the two optional bulk-load calls. */
type SplitMirror = Mirror & Required<Pick<Mirror, 'planShadow' | 'copyRangeIntoShadow'>>;

/** Both sides of a population that can be split, or null when either adapter cannot (SQL Server, for now). */
export function splitSides(mirror: Mirror, snapshot: SourceSnapshot): { mirror: SplitMirror; snapshot: SplittableSnapshot } | null {
  return isSplitMirror(mirror) && isSplittable(snapshot) ? { mirror, snapshot } : null;
}

function isSplitMirror(mirror: Mirror): mirror is SplitMirror {
  return typeof mirror.planShadow === 'function' && typeof mirror.copyRangeIntoShadow === 'function';
}

function isSplittable(snapshot: SourceSnapshot): snapshot is SplittableSnapshot {
  return 'rangeCuts' in snapshot && 'siblings' in snapshot && 'rowsInRange' in snapshot;
}

/** Ranges between consecutive cut keys: the first open below, the last open above. */
export function rangesOf(cuts: KeyValues[]): KeyRange[] {
  return [...cuts, undefined].map((upTo, i) => ({ ...(i > 0 ? { after: cuts[i - 1] } : {}), ...(upTo ? { upTo } : {}) }));
}

/**
 * The ranges a fresh population of this table is split into, or null to copy it in one stream: a split pays for
 * its sample and its extra connections only on a table of at least `minRows` (the planner's estimate).
 */
export async function chooseRanges(
  source: ChangeSource,
  snapshot: SplittableSnapshot,
  schema: TableSchema,
  opts: { streams: number; minRows: number },
): Promise<KeyRange[] | null> {
  if (opts.streams < 2 || schema.primaryKey.length === 0) return null;
  if ((await source.estimateRows(schema)) < opts.minRows) return null;
  const cuts = await snapshot.rangeCuts(schema, opts.streams);
  return cuts.length > 0 ? rangesOf(cuts) : null;
}

/**
 * Plans the split shadow (or takes up the resumable one with these ranges) and copies the ranges not yet done,
 * `streams` at a time: the main snapshot and its siblings take them from one queue. The first failure stops the
 * others — what they committed stays — and is the one thrown.
 */
export async function copyRanges(args: {
  ctx: Context;
  snapshot: SplittableSnapshot;
  mirror: SplitMirror;
  schema: TableSchema;
  fence: Fence;
  version: Version;
  format: RowFormat;
  ranges: KeyRange[];
  resume: boolean;
  streams: number;
  chunkBytes: number;
  /** After each committed chunk of any range: rows and bytes copied by this attempt, all ranges together. */
  report: (progress: { rows: number; bytes: number }) => void;
  draining?: AbortSignal | undefined;
}): Promise<void> {
  const { mirror } = args;
  const plan = await mirror.planShadow(args.schema, { resume: args.resume, version: args.version, fence: args.fence, ranges: args.ranges });
  const ranges = plan.ranges ?? [];
  const pending = ranges.flatMap((r, i) => (r.done ? [] : [i]));
  if (pending.length === 0) return;
  const copied = ranges.map(() => ({ rows: 0, bytes: 0 }));
  let firstError: { error: unknown } | null = null;
  const siblings = await args.snapshot.siblings(Math.min(args.streams, pending.length) - 1);
  try {
    await inLanes(
      [args.snapshot, ...siblings],
      pending,
      async (snapshot, index, failed) => {
        const range = ranges[index]!;
        await interruptibleCopy({
          ctx: args.ctx,
          table: args.schema.name,
          rows: snapshot.rowsInRange(args.schema, resumeRange(range), args.format),
          draining: args.draining,
          stop: failed,
          write: (rows) =>
            mirror.copyRangeIntoShadow(args.schema, index, rows, {
              version: args.version,
              fence: args.fence,
              format: args.format,
              chunkBytes: args.chunkBytes,
              onChunk: (p: PopulationProgress) => {
                copied[index] = { rows: p.rows, bytes: p.bytes };
                args.report({ rows: sum(copied, 'rows'), bytes: sum(copied, 'bytes') });
              },
            }),
        });
      },
      () => args.ctx.cancellationSignal.aborted || args.draining?.aborted === true,
    );
  } catch (error) {
    firstError = { error };
  } finally {
    await Promise.all(siblings.map((s) => s.close()));
  }
  // A lane that saw the cancellation between two ranges stopped without an error of its own.
  const stopped = interruption(args.ctx, args.draining, args.schema.name);
  if (stopped) throw stopped;
  if (firstError !== null) throw firstError.error;
}

/** A range resumed after the last key it committed. */
function resumeRange(range: ShadowRange): KeyRange {
  const after = range.lastKey ?? range.after;
  return { ...(after ? { after } : {}), ...(range.upTo ? { upTo: range.upTo } : {}) };
}

function sum(items: { rows: number; bytes: number }[], field: 'rows' | 'bytes'): number {
  return items.reduce((n, r) => n + r[field], 0);
}
