/**
 * The version rule, in one place. A mirror table at LSN `lsn` can continue from a source snapshot at version
 * `current` only if the source has not gone back behind it (a version below the LSN means the source was
 * restored: the mirror saw a history the source no longer has) and the source still holds every change since
 * it (an LSN below the table's min valid version means changes were cleaned up, truncated, or tracking was
 * re-enabled). Versions are decimal strings of unsigned 64-bit integers.
 */
import { FailureType } from './errors';
import type { Version } from './types';

export interface Discontinuity {
  type: typeof FailureType.SourceRestored | typeof FailureType.TrackingExpired;
  detail: string;
}

export function versionBelow(a: Version, b: Version): boolean {
  return BigInt(a) < BigInt(b);
}

/** Why a mirror at `lsn` cannot continue from `current` (with the table's `minValid`, if known), or null. */
export function discontinuity(lsn: Version, current: Version, minValid: Version | null): Discontinuity | null {
  if (versionBelow(current, lsn)) {
    return { type: FailureType.SourceRestored, detail: `source version ${current} is below the mirror's LSN ${lsn}` };
  }
  if (minValid !== null && versionBelow(lsn, minValid)) {
    return { type: FailureType.TrackingExpired, detail: `mirror LSN ${lsn} is below the source's min valid version ${minValid}` };
  }
  return null;
}
