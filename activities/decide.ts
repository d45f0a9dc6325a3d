/**
 * The rules that decide, per table, whether its mirror can continue from its LSN or must be repopulated. Pure,
 * so the prepare activity and the sync session apply the same rules and unit tests cover them. The version part
 * is src/core/versions.ts; a changed source fingerprint adds the restore that versions alone cannot see.
 */
import type { MirrorTableState, SourceFingerprint, Version } from '../src/core/types';
import { FailureType } from '../src/core/errors';
import { discontinuity, type Discontinuity } from '../src/core/versions';
import type { PopulateReason } from '../contract';

export interface TableFacts {
  state: MirrorTableState | undefined;
  sourceVersion: Version;
  minValidVersion: Version | null;
  fingerprint: SourceFingerprint;
  retentionMs: number;
  now: number;
  /** Set for a table without a key: it has no change tracking, and is refreshed whole this often. */
  refreshMs?: number;
}

export type Verdict = { action: 'mirror' } | { action: 'populate'; reason: PopulateReason; detail: string };

export function decideTable(facts: TableFacts): Verdict {
  const { state } = facts;
  if (!state || state.lsn === null) return { action: 'populate', reason: 'never populated', detail: 'no LSN in the mirror' };
  if (facts.refreshMs !== undefined) return refreshVerdict(state, facts.refreshMs, facts.now);
  if (state.needsBackfill) return { action: 'populate', reason: 'column added', detail: 'a column added in place needs its values' };
  const broken = continuityBreak(state.lsn, state.fingerprint, facts);
  if (broken) {
    return { action: 'populate', reason: broken.type === FailureType.SourceRestored ? 'source restored' : 'tracking expired', detail: broken.detail };
  }
  const lastSync = state.lastSyncAt ? Date.parse(state.lastSyncAt) : NaN;
  if (Number.isFinite(lastSync) && facts.now - lastSync > facts.retentionMs) {
    return { action: 'populate', reason: 'no sync within retention', detail: `last sync ${state.lastSyncAt}` };
  }
  return { action: 'mirror' };
}

/** A table refreshed whole: again once its last population is `refreshMs` old. */
function refreshVerdict(state: MirrorTableState, refreshMs: number, now: number): Verdict {
  const populated = state.populatedAt ? Date.parse(state.populatedAt) : NaN;
  if (!Number.isFinite(populated) || now - populated >= refreshMs) {
    return { action: 'populate', reason: 'periodic refresh', detail: `last refreshed ${state.populatedAt ?? 'never'}` };
  }
  return { action: 'mirror' };
}

/**
 * Why a mirror table at `lsn` (recorded with `recorded`, the fingerprint of the source it came from) cannot
 * continue from this source snapshot, or null. A version below the LSN is the obvious sign of a restore; a changed
 * fingerprint catches the restore that new writes have already pushed past the LSN.
 */
export function continuityBreak(
  lsn: Version,
  recorded: SourceFingerprint | null,
  source: Pick<TableFacts, 'sourceVersion' | 'fingerprint' | 'minValidVersion'>,
): Discontinuity | null {
  const byVersion = discontinuity(lsn, source.sourceVersion, source.minValidVersion);
  if (byVersion?.type === FailureType.SourceRestored) return byVersion;
  const changed = fingerprintChanges(recorded, source.fingerprint);
  const restored = changed.filter((key) => !key.startsWith(TABLE_COMPONENT));
  if (restored.length) return { type: FailureType.SourceRestored, detail: `source fingerprint changed (${restored.join(', ')})` };
  if (changed.length) return { type: FailureType.TrackingExpired, detail: `the table's change tracking restarted (${changed.join(', ')})` };
  return byVersion;
}

/** Fingerprint components of one table's tracking incarnation (see SourceSnapshot.tableFingerprint). */
const TABLE_COMPONENT = 'table.';

export function fingerprintChanges(recorded: SourceFingerprint | null, current: SourceFingerprint): string[] {
  if (!recorded) return [];
  // Only components both know: one a newer version added (or an older one lacked) is no evidence of anything.
  return Object.keys(recorded)
    .filter((key) => key in current && recorded[key] !== current[key])
    // A component the server would not tell us (permissions) is not evidence of a restore.
    .filter((key) => recorded[key] !== 'unavailable' && current[key] !== 'unavailable');
}
