/**
 * The one failure table. An activity fails with an ApplicationFailure whose type is one of these names; the
 * workflow looks the type up here to decide what the failure means, and the activity retry policy is derived
 * from the same table (a type whose action is not `retry` is non-retryable). Plain data: imported by the
 * workflow bundle, the activities, the adapters' errors and the CLI alike.
 */

export const FailureType = {
  /** The mirror cannot hold the new table shape in place: the table was replaced and must be repopulated. */
  IncompatibleSchema: 'IncompatibleSchema',
  /** Changes since the mirror's LSN are no longer available at the source: repopulate. */
  TrackingExpired: 'TrackingExpired',
  /** The source was restored or rebuilt (version went back or fingerprint changed). */
  SourceRestored: 'SourceRestored',
  /** Wrong credentials or permissions: retrying would only hammer the database. */
  AuthFailed: 'AuthFailed',
  /** Configuration is invalid or names something that does not exist. */
  BadConfig: 'BadConfig',
  /** A database could not be reached or dropped the connection: retried with backoff. */
  Unavailable: 'Unavailable',
  /** The mirror rejected a value or statement: retried with backoff (the batch rolled back, the LSN stayed). */
  MirrorWriteFailed: 'MirrorWriteFailed',
  /** Reading the source failed in a way that is worth retrying. */
  SourceReadFailed: 'SourceReadFailed',
  /** DDL holds a source table, or rewrote it while a snapshot was open: read it again next cycle. */
  SourceBusy: 'SourceBusy',
  /** A partner's query holds a mirror table longer than the DDL lock timeout: the DDL is tried again later. */
  MirrorBusy: 'MirrorBusy',
  /** A newer writer took over this scope (a duplicate or timed-out attempt): this one must not write. */
  Fenced: 'Fenced',
  /**
   * One table cannot be mirrored right now (a value or statement the mirror refuses, a type, a name collision, a
   * permission on that table): that table waits with backoff, the tenant's other tables go on.
   */
  TableFailed: 'TableFailed',
  /**
   * The worker running the activity is stopping (a deploy: SIGTERM) or was found dead by the fleet (its Temporal
   * worker heartbeats stopped): the attempt ends at a safe point and the workflow starts the work over at once,
   * on whichever worker polls.
   */
  WorkerLost: 'WorkerLost',
  /**
   * A session that had been syncing lost a database connection (a crash, a restart, a cut): a fresh outage, so the
   * workflow starts the session over at once and its retries back off from the start again. Without it, the
   * retries of a session that lives an hour would wait longer after every outage it ever had.
   */
  Interrupted: 'Interrupted',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/**
 * What the workflow does with a failure:
 * - `retry`: the activity's retry policy retries it with bounded backoff (the workflow sees it only once the
 *   retry window has run out, and then starts over after a pause);
 * - `repopulate`: the activity has left the mirror so that the next bootstrap repopulates what it concerns;
 * - `blockTenant`: nothing of the tenant can work until an operator fixes something (credentials,
 *   configuration): wait for a signal, re-check rarely, never hammer;
 * - `blockTable`: only the table named in the failure is affected: it waits, the tenant's other tables go on;
 * - `restart`: nothing is wrong with the work, only with where it ran: the workflow starts it over at once, as a
 *   new activity. A server retry would do the same with a backoff that grows with every attempt the activity ever
 *   had, and a session's attempts add up over its life (each worker lost, each deploy).
 */
export type FailureAction = 'retry' | 'repopulate' | 'blockTenant' | 'blockTable' | 'restart';

export const FAILURE_ACTIONS: Readonly<Record<FailureTypeName, FailureAction>> = {
  IncompatibleSchema: 'repopulate',
  TrackingExpired: 'repopulate',
  SourceRestored: 'repopulate',
  AuthFailed: 'blockTenant',
  BadConfig: 'blockTenant',
  Unavailable: 'retry',
  MirrorWriteFailed: 'retry',
  SourceReadFailed: 'retry',
  SourceBusy: 'retry',
  MirrorBusy: 'retry',
  Fenced: 'retry',
  TableFailed: 'blockTable',
  WorkerLost: 'restart',
  Interrupted: 'restart',
};

export function isFailureType(type: string | null | undefined): type is FailureTypeName {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(FAILURE_ACTIONS, type);
}

/** The action for a failure type; an unknown type (a bug, a driver error nobody classified) is retried. */
export function failureAction(type: string | null | undefined): FailureAction {
  return isFailureType(type) ? FAILURE_ACTIONS[type] : 'retry';
}

/** The types an activity retry policy must not retry: every type the workflow acts on itself. */
export const NON_RETRYABLE_TYPES: readonly FailureTypeName[] = (Object.keys(FAILURE_ACTIONS) as FailureTypeName[]).filter(
  (type) => FAILURE_ACTIONS[type] !== 'retry',
);
