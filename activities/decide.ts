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
}

export type Verdict = { action: 'mirror' } | { action: 'populate'; reason: PopulateReason; detail: string };

export function decideTable(facts: TableFacts): Verdict {
  const { state } = facts;
  if (!state || state.lsn === null) return { action: 'populate', reason: 'never populated', detail: 'no LSN in the mirror' };
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
  return Object.keys({ ...recorded, ...current })
    .filter((key) => recorded[key] !== current[key])
    // A component the server would not tell us (permissions) is not evidence of a restore.
    .filter((key) => recorded[key] !== 'unavailable' && current[key] !== 'unavailable');
}
