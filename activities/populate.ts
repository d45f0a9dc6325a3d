/**
 * Initial population of one table: stream every row from the source straight into the mirror's shadow table
 * (COPY, committed in chunks), then swap it in together with its LSN. The version is taken before the first row
 * is read; changes after it are re-sent by the next sync cycle and applied idempotently.
 *
 * After a worker crash the retry finds where to go on in the mirror itself — the shadow's progress marker holds
 * the version the copy reads at and the last key it committed — and continues from there instead of starting
 * over. Nothing of the tenant's data travels in heartbeats: they carry counts and the version only.
 */
import { hostname } from 'node:os';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { failureAction } from '../contract/failures';
import { MirrorError, FailureType } from '../src/core/errors';
import { versionBelow } from '../src/core/versions';
import type { Fence, Mirror, RowFormat, ShadowProgress, SourceSnapshot, TableSchema, Version } from '../src/core/types';
import type { PopulateHeartbeat, PopulateResult } from '../contract';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';
import { interruptibleCopy } from './streams';
import { chooseRanges, copyRanges, splitSides } from './split-population';

/** Heartbeats bring cancellations (wipe, pause): every second, so one arriving during a population is acted on promptly. */
const KEEPALIVE_MS = 1_000;

/** Who writes: named in the mirror's fence table for a person reading it. */
export function holderOf(deps: ActivityDeps, ctx: Context): string {
  return `${ctx.info.activityType} ${ctx.info.activityId}#${ctx.info.attempt} on ${deps.identity ?? `${process.pid}@${hostname()}`}`;
}

export async function populateTable(deps: ActivityDeps, tenantId: string, table: string): Promise<PopulateResult> {
  deps.metrics.tableState(tenantId, table, 'populating');
  try {
    const result = await populate(deps, tenantId, table);
    deps.metrics.tableState(tenantId, table, 'mirroring');
    return result;
  } catch (err) {
    // A failure of this table alone: the workflow puts it in backoff, as failed.
    if (err instanceof ApplicationFailure && failureAction(err.type) === 'blockTable') deps.metrics.tableState(tenantId, table, 'failed');
    throw err;
  }
}

async function populate(deps: ActivityDeps, tenantId: string, table: string): Promise<PopulateResult> {
  return withFailures({ tenant: tenantId, table, operation: 'populate' }, () =>
    withSides(deps, tenantId, async ({ tenant, source, mirror }) => {
      const ctx = Context.current();
      const log = deps.logger.child({ tenantId, table, activity: 'populateTable', attempt: ctx.info.attempt });
      const started = Date.now();
      const schema = (await source.listTables((name) => name === table)).tables[0];
      if (!schema) {
        throw new MirrorError(FailureType.IncompatibleSchema, 'the table no longer exists at the source', { tenant: tenantId, table, operation: 'populate' });
      }
      await mirror.applySchema(schema);
      // A newer attempt (this one, after a timed-out one that still runs somewhere) makes the older one unable to write.
      const fence = await mirror.takeFence(`populate:${table}`, holderOf(deps, ctx));
      const snapshot = await source.snapshot();
      let beat: PopulateHeartbeat | null = null;
      const keepAlive = setInterval(() => beat && ctx.heartbeat(beat), KEEPALIVE_MS);
      try {
        const resumable = await resumePoint(mirror, snapshot, schema);
        const version = resumable?.version ?? snapshot.version;
        if (!resumable) await assertTrackingCovers(snapshot, schema, tenantId);
        else log.info({ rows: resumable.rows, version }, 'resuming population from the last copied key');
        const base = resumable?.rows ?? 0;
        beat = { table, version, rows: base, bytes: 0 };
        ctx.heartbeat(beat);
        let recorded = { rows: 0, bytes: 0 };
        const report = (p: { rows: number; bytes: number }): void => {
          beat = { table, version, rows: base + p.rows, bytes: p.bytes };
          ctx.heartbeat(beat);
          // onChunk reports this attempt's totals: the metric takes what the chunk added.
          deps.metrics.populated(tenantId, table, { rows: p.rows - recorded.rows, bytes: p.bytes - recorded.bytes });
          recorded = { rows: p.rows, bytes: p.bytes };
        };
        const format = rowFormat(snapshot, mirror, schema);
        const common = { ctx, mirror, schema, fence, version, format, chunkBytes: tenant.batchBytes, report, draining: deps.draining };
        const split = splitSides(mirror, snapshot);
        // A resumed population keeps the way it was split (or not); a fresh one splits a large table.
        const ranges = !split
          ? null
          : resumable
            ? (resumable.ranges ?? null)
            : await chooseRanges(source, split.snapshot, schema, { streams: tenant.populateStreams, minRows: tenant.splitRows });
        if (split && ranges) {
          if (!resumable) log.info({ ranges: ranges.length, streams: tenant.populateStreams }, 'population split into key ranges');
          await copyRanges({ ...common, ...split, ranges, resume: resumable !== null, streams: tenant.populateStreams });
        } else {
          await copyRows({ ...common, snapshot, resume: resumable });
        }
        const swapped = await mirror.swapInShadow(schema, version, await snapshot.tableFingerprint(schema), fence);
        log.info({ rows: swapped.rows, lsn: version, format, ms: Date.now() - started }, 'table populated');
        return { table, rows: swapped.rows, lsn: version, resumed: resumable !== null, durationMs: Date.now() - started };
      } finally {
        clearInterval(keepAlive);
        await snapshot.close();
      }
    }),
    { metrics: deps.metrics },
  );
}

/**
 * Where a crashed population goes on: the shadow built for this schema, at a version whose changes the source
 * still has (a resumed copy keeps the version it started at, and the next cycle re-sends everything after it).
 * A table without a key has no order to resume in: it always starts over.
 */
async function resumePoint(mirror: Mirror, snapshot: SourceSnapshot, schema: TableSchema): Promise<(ShadowProgress & { version: Version }) | null> {
  if (schema.primaryKey.length === 0) return null;
  const progress = await mirror.shadowProgress(schema);
  // A split population's marker is worth resuming from its plan on: its ranges are the cut a new sample would not repeat.
  if (!progress || progress.version === undefined || (progress.lastKey === null && !progress.ranges)) return null;
  const minValid = await snapshot.minValidVersion(schema);
  if (minValid === null || versionBelow(progress.version, minValid)) return null;
  return { ...progress, version: progress.version };
}

/** The best row format both sides can use for this table (binary COPY between two PostgreSQL servers, else text). */
function rowFormat(snapshot: SourceSnapshot, mirror: Mirror, schema: TableSchema): RowFormat {
  const loads = mirror.rowFormats?.(schema) ?? ['text'];
  return (snapshot.rowFormats?.(schema) ?? ['text']).find((f) => loads.includes(f)) ?? 'text';
}

async function copyRows(args: {
  ctx: Context;
  snapshot: SourceSnapshot;
  mirror: Mirror;
  schema: TableSchema;
  fence: Fence;
  version: Version;
  format: RowFormat;
  resume: ShadowProgress | null;
  chunkBytes: number;
  /** After each committed chunk: rows and bytes copied by this attempt. */
  report: (progress: { rows: number; bytes: number }) => void;
  /** The worker drains: the chunk in flight rolls back, the committed ones stay, the next attempt resumes. */
  draining?: AbortSignal | undefined;
}): Promise<void> {
  const { snapshot, mirror, schema } = args;
  await interruptibleCopy({
    ctx: args.ctx,
    table: schema.name,
    rows: snapshot.rows(schema, args.resume?.lastKey ?? undefined, args.format),
    draining: args.draining,
    write: (rows) =>
      mirror.copyIntoShadow(schema, rows, {
        resume: args.resume !== null,
        version: args.version,
        fence: args.fence,
        format: args.format,
        // Commits (and resume points) every batchBytes: the tenant's bound on one write transaction.
        chunkBytes: args.chunkBytes,
        onChunk: (p) => args.report(p),
      }),
  });
}

/**
 * A population's version must not be below the table's min valid version, or the very next cycle would call the
 * table expired and repopulate it again. That happens when a transaction older than the enabling of tracking is
 * still open (it holds the horizon back): fail retryably and try again once it has finished. A table mirrored by
 * refresh has no tracking to cover it.
 */
async function assertTrackingCovers(snapshot: SourceSnapshot, schema: TableSchema, tenantId: string): Promise<void> {
  if (schema.primaryKey.length === 0) return;
  const minValid = await snapshot.minValidVersion(schema);
  if (minValid !== null && !versionBelow(snapshot.version, minValid)) return;
  throw new MirrorError(
    FailureType.SourceReadFailed,
    minValid === null
      ? 'change tracking is not recording for this table yet'
      : `a source transaction older than change tracking is still open (horizon ${snapshot.version} < min valid version ${minValid}); waiting for it to finish`,
    { tenant: tenantId, table: schema.name, operation: 'populate', side: 'source' },
  );
}
