/**
 * `_mirror_log`: the partner-readable history of what the mirror did to each table, one row per change cycle that
 * changed something, per population swapped in and per table wiped. Each row is written in the transaction of
 * what it describes, so the log never claims what did not commit. Both mirrors store the same columns.
 */
import type { CycleCounts } from '../../contract/payloads';
import type { ShadowProgress, Version } from './types';

export type MirrorLogEvent = 'sync' | 'populate' | 'wipe';

export interface MirrorLogEntry {
  table: string;
  event: MirrorLogEvent;
  inserts?: number;
  updates?: number;
  deletes?: number;
  /** populate: rows swapped in. */
  rows?: number;
  bytes?: number;
  fromLsn?: Version | null;
  toLsn?: Version | null;
  durationMs?: number;
  /** Why (a wipe's reason, a population's cause), never row data. */
  detail?: string | null;
}

/** The columns after the generated id and time, in the order both adapters bind them. */
export const LOG_COLUMNS = ['table_name', 'event', 'inserts', 'updates', 'deletes', 'row_count', 'bytes', 'from_lsn', 'to_lsn', 'duration_ms', 'detail'] as const;

/** The entry's values in LOG_COLUMNS order (absent figures are NULL: a wipe has no counts). */
export function logValues(e: MirrorLogEntry): (string | number | null)[] {
  return [
    e.table,
    e.event,
    e.inserts ?? null,
    e.updates ?? null,
    e.deletes ?? null,
    e.rows ?? null,
    e.bytes ?? null,
    e.fromLsn ?? null,
    e.toLsn ?? null,
    e.durationMs === undefined ? null : Math.max(0, Math.round(e.durationMs)),
    e.detail === undefined || e.detail === null ? null : e.detail.slice(0, 4000),
  ];
}

/** The `populate` row of a population swapped in at `lsn`, from its shadow's progress marker. */
export function populateEntry(table: string, marker: ShadowProgress, lsn: Version): MirrorLogEntry {
  return {
    table,
    event: 'populate',
    rows: marker.rows,
    ...(marker.bytes !== undefined ? { bytes: marker.bytes } : {}),
    toLsn: lsn,
    ...(marker.startedAt ? { durationMs: Date.now() - Date.parse(marker.startedAt) } : {}),
  };
}

/** A `lastCyclesSql` row as both mirrors read it (counts as text or numbers, NULL as 0). */
export function lastCycleOf(r: { table_name: string; inserts: string | number | null; updates: string | number | null; deletes: string | number | null; logged_at: Date }): { table: string } & CycleCounts {
  return { table: r.table_name, inserts: Number(r.inserts ?? 0), updates: Number(r.updates ?? 0), deletes: Number(r.deletes ?? 0), at: r.logged_at.toISOString() };
}

/** A sync row only when the cycle changed something: an idle table's cycles leave no trace. */
export function changedAnything(counts: { inserts: number; updates: number; deletes: number }): boolean {
  return counts.inserts + counts.updates + counts.deletes > 0;
}
