/**
 * Turns whatever an adapter threw into the ApplicationFailure the workflow acts on: the MirrorError's type
 * becomes the failure type, non-retryable ones are marked so, and the message names tenant, table and operation.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, type FailureTypeName } from '../src/core/errors';
import type { MirrorMetrics } from '../src/metrics';

export function toFailure(err: unknown, context: ErrorContext, fallback: FailureTypeName = FailureType.Unavailable): Error {
  if (err instanceof CancelledFailure || err instanceof ApplicationFailure) return err;
  const mirrorError = err instanceof MirrorError ? err : toMirrorError(err, context, fallback);
  return ApplicationFailure.create({
    type: mirrorError.type,
    message: mirrorError.message,
    nonRetryable: !mirrorError.retryable,
    details: [mirrorError.context],
  });
}

/** Runs an activity body, converting failures on the way out (and counting them by type, cancellations aside). */
export async function withFailures<T>(
  context: ErrorContext,
  body: () => Promise<T>,
  opts: { metrics?: MirrorMetrics; fallback?: FailureTypeName } = {},
): Promise<T> {
  try {
    return await body();
  } catch (err) {
    const failure = toFailure(err, context, opts.fallback);
    if (opts.metrics && context.tenant && failure instanceof ApplicationFailure) {
      opts.metrics.failed(context.tenant, failure.type ?? 'unknown', context.operation ?? 'unknown');
    }
    throw failure;
  }
}
