/**
 * Initial population of one table: stream every row from the source straight into the mirror's shadow table
 * (COPY, committed in chunks), then swap it in together with its LSN. The version is taken before the first row
 * is read; changes after it are re-sent by the next sync cycle and applied idempotently.
 *
 * After a worker crash the retry finds the version in its heartbeat details and the last copied key in the
 * shadow itself, and continues from there instead of starting over.
 */
import { Context, CancelledFailure } from '@temporalio/activity';
import { MirrorError, FailureType } from '../src/core/errors';
import { versionBelow } from '../src/core/versions';
import type { SourceSnapshot, TableSchema } from '../src/core/types';
import type { PopulateHeartbeat, PopulateResult } from '../contract';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';

/** Heartbeats bring cancellations (wipe, pause): every second, so one arriving during a population is acted on promptly. */
const KEEPALIVE_MS = 1_000;

export async function populateTable(deps: ActivityDeps, tenantId: string, table: string): Promise<PopulateResult> {
  return withFailures({ tenant: tenantId, table, operation: 'populate' }, () =>
    withSides(deps, tenantId, async ({ tenant, source, mirror }) => {
      const ctx = Context.current();
      const log = deps.logger.child({ tenantId, table, activity: 'populateTable', attempt: ctx.info.attempt });
      const started = Date.now();
      const schema = (await source.listTables((name) => name === table)).tables[0];
      if (!schema) {
        throw new MirrorError(FailureType.IncompatibleSchema, 'the table no longer exists at the source (or lost its primary key)', {
          tenant: tenantId,
          table,
          operation: 'populate',
        });
      }
      await mirror.applySchema(schema);

      const previous = ctx.info.heartbeatDetails as PopulateHeartbeat | undefined;
      const snapshot = await source.snapshot();
      let lastBeat: PopulateHeartbeat | null = null;
      const keepAlive = setInterval(() => lastBeat && ctx.heartbeat(lastBeat), KEEPALIVE_MS);
      try {
        const lastKey = previous?.table === table ? await mirror.shadowLastKey(schema) : null;
        const resume = previous !== undefined && lastKey !== null;
        const version = resume ? previous.version : snapshot.version;
        if (!resume) await assertTrackingCovers(snapshot, schema, tenantId);
        const base = resume ? { rows: previous.rows, bytes: previous.bytes } : { rows: 0, bytes: 0 };
        if (resume) log.info({ rows: previous.rows, version }, 'resuming population from the last copied key');
        lastBeat = { table, version, rows: base.rows, bytes: base.bytes, lastKey };
        ctx.heartbeat(lastBeat);

        const rows = snapshot.rows(schema, lastKey ?? undefined);
        // The mirror reads errors through its iterator, but only once its copy has started: a cancellation that
        // destroys the stream before that (while the shadow is prepared) would be an unhandled 'error' event and
        // take the worker process down.
        rows.on('error', () => undefined);
        const onAbort = (): void => {
          rows.destroy(new CancelledFailure('population cancelled'));
        };
        ctx.cancellationSignal.addEventListener('abort', onAbort, { once: true });
        try {
          await mirror.copyIntoShadow(schema, rows, {
            resume,
            // Commits (and resume points) every batchBytes: the tenant's bound on one write transaction.
            chunkBytes: tenant.batchBytes,
            onChunk: (p) => {
              lastBeat = { table, version, rows: base.rows + p.rows, bytes: base.bytes + p.bytes, lastKey: p.lastKey };
              ctx.heartbeat(lastBeat);
            },
          });
        } catch (err) {
          // The adapter reports the destroyed row stream as a failed read; it was a cancellation (a wipe or pause
          // arrived), and the history should say so rather than show a SourceReadFailed.
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('population cancelled');
          throw err;
        } finally {
          ctx.cancellationSignal.removeEventListener('abort', onAbort);
        }
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure('population cancelled');
        const swapped = await mirror.swapInShadow(schema, version, await snapshot.tableFingerprint(schema));
        log.info({ rows: swapped.rows, lsn: version, ms: Date.now() - started }, 'table populated');
        return { table, rows: swapped.rows, lsn: version, resumed: resume, durationMs: Date.now() - started };
      } finally {
        clearInterval(keepAlive);
        await snapshot.close();
      }
    }),
  );
}

/**
 * A population's version must not be below the table's min valid version, or the very next cycle would call the
 * table expired and repopulate it again. That happens when a transaction older than the enabling of tracking is
 * still open (it holds the horizon back): fail retryably and try again once it has finished.
 */
async function assertTrackingCovers(snapshot: SourceSnapshot, schema: TableSchema, tenantId: string): Promise<void> {
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
