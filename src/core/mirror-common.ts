/**
 * What both mirror adapters share, whatever their SQL: the names of their locks, how a `_mirror_state` row and a
 * shadow's progress marker read back, and the decision of what to do with a received table shape.
 */
import { compareSchema, describeChange, type ExistingTable, type SchemaChange } from './schema-compat';
import type { KeyValues, MirrorTableState, SchemaApplyResult, ShadowProgress, ShadowRange, SourceFingerprint, TableSchema } from './types';

/** Lock names that serialise a tenant's mirror DDL across workers: one for the schema's set-up, one per table. */
export function mirrorLockName(schema: string, table?: string): string {
  return table === undefined ? `tenant-mirror:${schema}` : `tenant-mirror:${schema}:${table}`;
}

/**
 * What to do with a table shape the source sent:
 * - `create`: the mirror has no such table;
 * - `unchanged` / `alter`: the existing table holds it (in place, with `changes`);
 * - `replace`: it cannot: drop the table (and its state) and repopulate.
 */
export type SchemaStep =
  | { step: 'create' }
  | { step: 'unchanged' }
  | { step: 'alter'; changes: SchemaChange[] }
  | { step: 'replace'; reason: string };

/**
 * `received` is the shape as this mirror would store it (the adapter's normalisation). `keyTypeFixed`: the
 * database cannot change a primary key column's type in place, so even a widening of one replaces the table.
 */
export function schemaStep(existing: ExistingTable | null, received: TableSchema, opts: { keyTypeFixed: boolean }): SchemaStep {
  if (!existing) return { step: 'create' };
  const comparison = compareSchema(existing, received);
  switch (comparison.status) {
    case 'unchanged':
      return { step: 'unchanged' };
    case 'incompatible':
      return { step: 'replace', reason: comparison.reason };
    case 'altered': {
      const keyWidened = comparison.changes.some((c) => c.kind === 'widenType' && received.primaryKey.includes(c.column));
      if (opts.keyTypeFixed && keyWidened) {
        return { step: 'replace', reason: 'a primary key column changed type (the mirror cannot alter a key column in place)' };
      }
      return { step: 'alter', changes: comparison.changes };
    }
  }
}

/** The result the Mirror interface reports for a step the adapter has carried out. */
export function schemaResult(step: SchemaStep): SchemaApplyResult {
  switch (step.step) {
    case 'create':
      return { outcome: 'created' };
    case 'unchanged':
      return { outcome: 'unchanged' };
    case 'replace':
      return { outcome: 'incompatible', reason: step.reason };
    case 'alter':
      return {
        outcome: 'altered',
        changes: step.changes.map(describeChange),
        // Rows already in the table hold NULL in an added column until the table is repopulated.
        needsBackfill: step.changes.some((c) => c.kind === 'addColumn'),
      };
  }
}

/** A shadow's progress marker as stored (JSON), or null when it is not one of ours. */
export function parseShadowProgress(text: string): ShadowProgress | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { table, schemaHash, version, lastKey, rows, bytes, startedAt, ranges } = value as Record<string, unknown>;
  if (typeof schemaHash !== 'string' || typeof rows !== 'number') return null;
  if (lastKey !== null && !isKey(lastKey)) return null;
  const split = ranges === undefined ? undefined : parseRanges(ranges);
  if (split === null) return null;
  return {
    ...(split ? { ranges: split } : {}),
    ...(typeof table === 'string' ? { table } : {}),
    schemaHash,
    ...(typeof version === 'string' ? { version } : {}),
    lastKey: lastKey as KeyValues | null,
    rows,
    ...(typeof bytes === 'number' ? { bytes } : {}),
    ...(typeof startedAt === 'string' ? { startedAt } : {}),
  };
}

function isKey(value: unknown): value is KeyValues {
  return Array.isArray(value) && value.every((k) => k === null || typeof k === 'string');
}

/** The ranges of a split population's marker; null when any is malformed (the marker is then not ours). */
function parseRanges(value: unknown): ShadowRange[] | null {
  if (!Array.isArray(value)) return null;
  const out: ShadowRange[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return null;
    const { after, upTo, lastKey, rows, bytes, done } = item as Record<string, unknown>;
    if ((after !== undefined && !isKey(after)) || (upTo !== undefined && !isKey(upTo))) return null;
    if ((lastKey !== null && !isKey(lastKey)) || typeof rows !== 'number' || typeof bytes !== 'number' || typeof done !== 'boolean') return null;
    out.push({ ...(after !== undefined ? { after } : {}), ...(upTo !== undefined ? { upTo } : {}), lastKey, rows, bytes, done });
  }
  return out;
}

/** A `_mirror_state` row as both databases return it (timestamps already ISO 8601 text, counts as text). */
export interface StateRow {
  table_name: string;
  lsn: string | null;
  schema_hash: string | null;
  /** JSON text, or the object a jsonb column decodes to. */
  fingerprint: unknown;
  populated_at: string | null;
  last_sync_at: string | null;
  row_count: string | null;
}

export function toTableState(r: StateRow): MirrorTableState {
  return {
    table: r.table_name,
    lsn: r.lsn,
    schemaHash: r.schema_hash,
    fingerprint: toFingerprint(r.fingerprint),
    populatedAt: r.populated_at,
    lastSyncAt: r.last_sync_at,
    rows: r.row_count === null ? null : Number(r.row_count),
  };
}

function toFingerprint(value: unknown): SourceFingerprint | null {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return null;
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
}

/** DDL on a mirror table (create, alter, swap, drop) waits this long at most for a partner's lock: then MirrorBusy. */
export const DDL_LOCK_TIMEOUT_MS = 5_000;
