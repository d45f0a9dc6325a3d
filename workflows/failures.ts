/**
 * How the workflow reads a failed activity: its ApplicationFailure type (looked up in the one failure table,
 * contract/failures.ts) and its message. Imports only @temporalio/workflow, so it stays deterministic.
 */
import { ActivityFailure, ApplicationFailure, TemporalFailure } from '@temporalio/workflow';

/** The typed failure name of an activity failure, or null. */
export function failureTypeOf(err: unknown): string | null {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? null) : null;
}

/** The table a failure names in its details (activities put their error context there), or null. */
export function failureTable(err: unknown): string | null {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure)) return null;
  const context = cause.details?.[0];
  const table = typeof context === 'object' && context !== null ? (context as { table?: unknown }).table : undefined;
  return typeof table === 'string' ? table : null;
}

export function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  if (cause instanceof TemporalFailure || cause instanceof Error) return cause.message;
  return String(cause);
}
