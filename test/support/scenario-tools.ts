/**
 * Tools for the scenario tests: the workflow's history read as a story (which activities ran, with what input,
 * how they failed), PostgreSQL backups with the system's client tools, and a look at who is connected.
 */
import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import type { temporal } from '@temporalio/proto';
import { query } from './checksum';
import { waitFor } from './wait';

const run = promisify(execFile);

export interface ActivityRun {
  /** The ActivityTaskScheduled event id: later events have larger ids. */
  eventId: number;
  /** The event that closed it (completed, failed, ...), or null while it is pending. */
  closedEventId: number | null;
  name: string;
  args: unknown[];
  maximumIntervalMs: number | undefined;
  scheduleToCloseMs: number | undefined;
  outcome: 'completed' | 'failed' | 'cancelled' | 'timedOut' | 'pending';
  result: unknown;
  failure: { type: string | null; message: string } | null;
}

type Payloads = temporal.api.common.v1.IPayloads | null | undefined;

function decode(payloads: Payloads): unknown[] {
  return (payloads?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));
}

function failureOf(f: temporal.api.failure.v1.IFailure | null | undefined): { type: string | null; message: string } {
  // An activity failure's own message is generic ("Activity task failed"); the cause carries the typed failure.
  const inner = f?.cause ?? f;
  return { type: inner?.applicationFailureInfo?.type ?? null, message: inner?.message ?? f?.message ?? '' };
}

/** Every activity the tenant's workflow scheduled, in order, with its outcome. */
export async function activityRuns(client: Client, workflowId: string): Promise<ActivityRun[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const runs = new Map<number, ActivityRun>();
  for (const e of history.events ?? []) {
    const id = Number(e.eventId);
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      runs.set(id, {
        eventId: id,
        closedEventId: null,
        name: scheduled.activityType?.name ?? '?',
        args: decode(scheduled.input),
        maximumIntervalMs: optionalTsToMs(scheduled.retryPolicy?.maximumInterval),
        scheduleToCloseMs: optionalTsToMs(scheduled.scheduleToCloseTimeout),
        outcome: 'pending',
        result: undefined,
        failure: null,
      });
      continue;
    }
    const close = (scheduledEventId: unknown, fields: Partial<ActivityRun>): void => {
      const r = runs.get(Number(scheduledEventId));
      if (r) Object.assign(r, { closedEventId: id }, fields);
    };
    const done = e.activityTaskCompletedEventAttributes;
    if (done) close(done.scheduledEventId, { outcome: 'completed', result: decode(done.result)[0] });
    const failed = e.activityTaskFailedEventAttributes;
    if (failed) close(failed.scheduledEventId, { outcome: 'failed', failure: failureOf(failed.failure) });
    const cancelled = e.activityTaskCanceledEventAttributes;
    if (cancelled) close(cancelled.scheduledEventId, { outcome: 'cancelled' });
    const timedOut = e.activityTaskTimedOutEventAttributes;
    if (timedOut) close(timedOut.scheduledEventId, { outcome: 'timedOut', failure: failureOf(timedOut.failure) });
  }
  return [...runs.values()];
}

/** The last event id so far: a mark to look at "what happened after this". */
export async function historyMark(client: Client, workflowId: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  return events.length ? Number(events[events.length - 1]!.eventId) : 0;
}

/** populateTable runs scheduled after `mark`, by table name. */
export function populations(runs: ActivityRun[], mark = 0): string[] {
  return runs.filter((r) => r.name === 'populateTable' && r.eventId > mark).map((r) => String(r.args[1]));
}

/** Runs that started, or ended, after `mark` (a session that was running at the mark and failed later counts). */
export function after(runs: ActivityRun[], mark: number, name?: string): ActivityRun[] {
  return runs.filter((r) => (r.eventId > mark || (r.closedEventId ?? Infinity) > mark) && (name === undefined || r.name === name));
}

/** Waits for an activity run after `mark` that satisfies `match` (e.g. a wipe that completed), and returns it. */
export async function waitForRun(
  client: Client,
  workflowId: string,
  mark: number,
  match: (r: ActivityRun) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<ActivityRun> {
  let found: ActivityRun | undefined;
  await waitFor(
    async () => {
      found = after(await activityRuns(client, workflowId), mark).find(match);
      return found !== undefined;
    },
    { timeoutMs, intervalMs: 200, what },
  );
  return found!;
}

/** pg_dump in custom format (PostgreSQL 15 client tools, the embedded servers' major version). */
export async function pgDump(url: string, file: string): Promise<void> {
  await run('/usr/bin/pg_dump', ['--format=custom', '--file', file, '--dbname', url]);
}

/**
 * pg_restore. `clean` drops each object before recreating it; `singleTransaction` makes the whole restore one
 * transaction, so a concurrent reader sees the database either before or after it.
 */
export async function pgRestore(url: string, file: string, opts: { clean?: boolean; singleTransaction?: boolean } = {}): Promise<void> {
  const args = ['--dbname', url, '--no-owner', '--exit-on-error'];
  if (opts.clean) args.push('--clean', '--if-exists');
  if (opts.singleTransaction) args.push('--single-transaction');
  await run('/usr/bin/pg_restore', [...args, file]);
}

/** A file-level copy of a stopped server's data directory (the server must be stopped). */
export function copyDataDir(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  // `cp -a` keeps owner and mode: the embedded server runs as `postgres` when the tests run as root.
  execFileSync('cp', ['-a', from, to]);
}

/** Backends of the product (application_name 'tenant-mirror') connected to a server. */
export async function productConnections(serverUrl: string): Promise<number> {
  const rows = await query<{ n: string }>(serverUrl, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'tenant-mirror'`);
  return Number(rows[0]!.n);
}

/** Cuts every connection the product holds to a server. Returns how many were cut. */
export async function cutProductConnections(serverUrl: string): Promise<number> {
  const rows = await query<{ pid: number }>(
    serverUrl,
    `SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity WHERE application_name = 'tenant-mirror'`,
  );
  return rows.length;
}

/** The source's current version, as the product computes it (the snapshot horizon). */
export async function sourceVersion(url: string): Promise<bigint> {
  const rows = await query<{ v: string }>(url, 'SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS v');
  return BigInt(rows[0]!.v);
}

/** The mirror's recorded LSN per table (`_mirror_state`). */
export async function mirrorLsns(url: string, schema: string): Promise<Map<string, bigint | null>> {
  const rows = await query<{ table_name: string; lsn: string | null }>(url, `SELECT table_name, lsn::text AS lsn FROM "${schema}"._mirror_state`);
  return new Map(rows.map((r) => [r.table_name, r.lsn === null ? null : BigInt(r.lsn)]));
}

export async function mirrorTables(url: string, schema: string): Promise<string[]> {
  const rows = await query<{ t: string }>(url, `SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY 1`, [schema]);
  return rows.map((r) => r.t);
}

/** Tables with change tracking registered at the source (empty when tracking was never installed). */
export async function trackedTables(url: string): Promise<string[]> {
  const present = await query<{ ok: boolean }>(url, `SELECT to_regclass('tenant_mirror_ct.tracked') IS NOT NULL AS ok`);
  if (!present[0]!.ok) return [];
  const tracked = await query<{ t: string }>(url, `SELECT table_schema || '.' || table_name AS t FROM tenant_mirror_ct.tracked ORDER BY 1`);
  return tracked.map((r) => r.t);
}

/** Consumes `n` transaction ids at the source, one committed transaction each. */
export async function burnXids(url: string, n: number): Promise<void> {
  await query(url, `DO $$ BEGIN FOR i IN 1..${Math.floor(n)} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`);
}
