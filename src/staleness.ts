/**
 * Whether a tenant the workflow calls `mirroring` really is: its sync session may wait for a worker that never
 * comes (every worker down), or run without getting anywhere (stuck on a lock, a dead worker the fleet has not
 * noticed). Judged from the outside, on what the server and the mirror record: the session activity's state and
 * times, and the newest `lastSyncAt` of the tenant's tracked tables (a session touches every table at least once a
 * minute, and records each committed batch). Pure, so that the rules are tested on their own.
 */
import type { TableStatus } from '../contract';

/** A session scheduled this long without a worker starting it. */
export const UNSTARTED_AFTER_MS = 30_000;
/** No table confirmed for this long (or three poll intervals, if longer). */
export const SILENT_AFTER_MS = 3 * 60_000;

export interface SessionActivity {
  /** The activity is running on a worker (not waiting to be picked up, or in a retry backoff). */
  started: boolean;
  scheduledAt: number | null;
  startedAt: number | null;
}

export interface Staleness {
  /** How long the tenant has not been kept up to date. */
  seconds: number;
  why: string;
}

export function staleness(args: {
  tables: TableStatus[];
  session: SessionActivity | null;
  /** Other work the workflow handed out that no worker has started yet (its workflow task, another activity), and since when. */
  unstarted?: { what: string; since: number } | null;
  pollIntervalMs: number;
  now: number;
}): Staleness | null {
  const { session, now } = args;
  if (session && !session.started && session.scheduledAt !== null && now - session.scheduledAt > UNSTARTED_AFTER_MS) {
    const seconds = Math.round((now - session.scheduledAt) / 1000);
    return { seconds, why: `no worker has started the sync session for ${seconds} s` };
  }
  // After a lost worker the workflow itself must run again to start a new session: with no worker, its task waits.
  const unstarted = args.unstarted;
  if (unstarted && now - unstarted.since > UNSTARTED_AFTER_MS) {
    const seconds = Math.round((now - unstarted.since) / 1000);
    return { seconds, why: `no worker has started ${unstarted.what} for ${seconds} s` };
  }
  const tracked = args.tables.filter((t) => t.state === 'mirroring' && t.mode !== 'refresh');
  const synced = tracked.map((t) => (t.lastSyncAt ? Date.parse(t.lastSyncAt) : NaN)).filter((t) => Number.isFinite(t));
  if (synced.length === 0 || synced.length < tracked.length) return null;
  const newest = Math.max(...synced);
  // A session that has just (re)started has a cycle to run before it touches anything.
  const since = Math.max(newest, session?.startedAt ?? 0);
  const silentAfter = Math.max(SILENT_AFTER_MS, 3 * args.pollIntervalMs);
  if (now - since <= silentAfter) return null;
  const seconds = Math.round((now - newest) / 1000);
  return { seconds, why: `no table synced for ${seconds} s` };
}

/**
 * A table's lag: none while the source is still at the version the mirror holds, or has nothing for the table past
 * it (`quiet`), else the time since it synced.
 */
export function lagSeconds(table: TableStatus, sourceVersion: string | null, now: number, quiet = false): number | null {
  if (table.state !== 'mirroring' || table.lsn === null || !table.lastSyncAt) return null;
  if (quiet || (sourceVersion !== null && table.lsn === sourceVersion)) return 0;
  return Math.max(0, Math.round((now - Date.parse(table.lastSyncAt)) / 1000));
}
