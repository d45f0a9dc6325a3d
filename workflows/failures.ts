/**
 * How the workflow reads a failed activity: by the ApplicationFailure type the activity gave it
 * (src/core/errors.ts names them). Kept free of imports beyond @temporalio/workflow so it stays deterministic.
 */
import { ActivityFailure, ApplicationFailure, TemporalFailure } from '@temporalio/workflow';

const REPOPULATE = new Set(['IncompatibleSchema', 'TrackingExpired', 'SourceRestored']);
const BLOCKING = new Set(['AuthFailed', 'BadConfig']);

/** The typed failure name of an activity failure, or null. */
export function failureTypeOf(err: unknown): string | null {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? null) : null;
}

export function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  if (cause instanceof TemporalFailure || cause instanceof Error) return cause.message;
  return String(cause);
}

export function isRepopulateFailure(type: string | null): boolean {
  return type !== null && REPOPULATE.has(type);
}

export function isBlockingFailure(type: string | null): boolean {
  return type !== null && BLOCKING.has(type);
}
