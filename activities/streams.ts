/**
 * Source row streams handed to the mirror: kept harmless when abandoned, and ended when the work is cancelled.
 *
 * A source stream handed to the mirror is read only once the mirror's copy has started. If the mirror fails
 * before that (its server is down, a fence check fails) or a cancellation destroys the stream first, the source's
 * error would be an 'error' event nobody listens to, and take the worker process down. The mirror still learns
 * of the error through its own reading (`stream.errored`); this only keeps an abandoned stream harmless.
 */
import type { Readable } from 'node:stream';
import { CancelledFailure, type Context } from '@temporalio/activity';
import { MirrorError, FailureType } from '../src/core/errors';

export function abandonable<T extends Readable>(stream: T): T {
  stream.on('error', () => undefined);
  return stream;
}

/**
 * Runs `write` over a source row stream that a cancellation (wipe, pause), the worker's drain or `stop` ends
 * early: the stream is destroyed, the chunk in flight rolls back and the committed ones stay for the next attempt
 * to resume from. The adapter reports a destroyed stream as a failed read; the error thrown says what really
 * happened, so the history shows a cancellation or a lost worker rather than a SourceReadFailed.
 */
export async function interruptibleCopy<T>(args: {
  ctx: Context;
  table: string;
  rows: Readable;
  draining?: AbortSignal | undefined;
  /** Another part of the same population failed: this one stops too (its own error is then not the story). */
  stop?: AbortSignal | undefined;
  write: (rows: Readable) => Promise<T>;
}): Promise<T> {
  const { ctx, draining, stop } = args;
  const rows = abandonable(args.rows);
  const onAbort = (): void => {
    rows.destroy(new CancelledFailure('population cancelled'));
  };
  const onDrain = (): void => {
    rows.destroy(drained(args.table));
  };
  const onStop = (): void => {
    rows.destroy(new CancelledFailure('another key range of this population failed'));
  };
  // A signal that fired before this copy began never calls a listener added now: the copy does not start.
  const early = interruption(ctx, draining, args.table) ?? (stop?.aborted ? new CancelledFailure('another key range of this population failed') : null);
  if (early) {
    rows.destroy();
    throw early;
  }
  ctx.cancellationSignal.addEventListener('abort', onAbort, { once: true });
  draining?.addEventListener('abort', onDrain, { once: true });
  stop?.addEventListener('abort', onStop, { once: true });
  try {
    const result = await args.write(rows);
    // A drain that came as the copy finished leaves it finished; a cancellation (wipe, pause) still stops it.
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('population cancelled');
    return result;
  } catch (err) {
    throw interruption(ctx, draining, args.table) ?? err;
  } finally {
    ctx.cancellationSignal.removeEventListener('abort', onAbort);
    draining?.removeEventListener('abort', onDrain);
    stop?.removeEventListener('abort', onStop);
  }
}

/** The error for a population stopped from outside (a cancellation, the worker's drain), or null when it was not. */
export function interruption(ctx: Context, draining: AbortSignal | undefined, table: string): Error | null {
  if (ctx.cancellationSignal.aborted) return new CancelledFailure('population cancelled');
  return draining?.aborted ? drained(table) : null;
}

function drained(table: string): MirrorError {
  return new MirrorError(FailureType.WorkerLost, 'the worker is shutting down: the population resumes from its last committed chunk on another worker', {
    table,
    operation: 'populate',
  });
}
