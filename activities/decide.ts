/**
 * The rules that decide, per table, whether its mirror can continue from its LSN or must be repopulated. Pure,
 * so the prepare activity and the sync session apply the same rules and unit tests cover them.
 */
import type { MirrorTableState, SourceFingerprint, Version } from '../src/core/types';
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
  const restored = restoreEvidence(state, facts.sourceVersion, facts.fingerprint);
  if (restored) return { action: 'populate', reason: 'source restored', detail: restored };
  if (facts.minValidVersion !== null && BigInt(state.lsn) < BigInt(facts.minValidVersion)) {
    return {
      action: 'populate',
      reason: 'tracking expired',
      detail: `mirror LSN ${state.lsn} is below the source's min valid version ${facts.minValidVersion}`,
    };
  }
  const lastSync = state.lastSyncAt ? Date.parse(state.lastSyncAt) : NaN;
  if (Number.isFinite(lastSync) && facts.now - lastSync > facts.retentionMs) {
    return { action: 'populate', reason: 'no sync within retention', detail: `last sync ${state.lastSyncAt}` };
  }
  return { action: 'mirror' };
}

/**
 * Why the source looks restored, or null. A version below the mirror's LSN is the obvious sign; a changed
 * fingerprint catches the restore that new writes have already pushed past the LSN.
 */
export function restoreEvidence(state: MirrorTableState, sourceVersion: Version, fingerprint: SourceFingerprint): string | null {
  if (state.lsn !== null && BigInt(sourceVersion) < BigInt(state.lsn)) {
    return `source version ${sourceVersion} is below the mirror's LSN ${state.lsn}`;
  }
  const changed = fingerprintChanges(state.fingerprint, fingerprint);
  return changed.length ? `source fingerprint changed (${changed.join(', ')})` : null;
}

export function fingerprintChanges(recorded: SourceFingerprint | null, current: SourceFingerprint): string[] {
  if (!recorded) return [];
  return Object.keys({ ...recorded, ...current })
    .filter((key) => recorded[key] !== current[key])
    // A component the server would not tell us (permissions) is not evidence of a restore.
    .filter((key) => recorded[key] !== 'unavailable' && current[key] !== 'unavailable');
}
