import { describe, expect, it } from 'vitest';
import { continuityBreak, decideTable, fingerprintChanges, type TableFacts } from '../../activities/decide';
import { discontinuity } from '../../src/core/versions';
import type { MirrorTableState } from '../../src/core/types';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const fingerprint = { systemIdentifier: '7300', timeline: '1', databaseOid: '16384', trackingEpoch: 'e1' };
const state = (over: Partial<MirrorTableState> = {}): MirrorTableState => ({
  table: 'orders', lsn: '1000', schemaHash: 'h', fingerprint, populatedAt: null, lastSyncAt: '2026-11-26T11:59:00Z', rows: 1, ...over,
});
const facts = (over: Partial<TableFacts> = {}): TableFacts => ({
  state: state(), sourceVersion: '1200', minValidVersion: '900', fingerprint, retentionMs: 7 * 86_400_000, now: NOW, ...over,
});

describe('per-table decision', () => {
  it('mirrors from the LSN when everything lines up', () => {
    expect(decideTable(facts())).toEqual({ action: 'mirror' });
  });

  it('populates a table the mirror has never filled', () => {
    expect(decideTable(facts({ state: undefined }))).toMatchObject({ action: 'populate', reason: 'never populated' });
    expect(decideTable(facts({ state: state({ lsn: null }) }))).toMatchObject({ reason: 'never populated' });
  });

  it('sees a restored source when its version went below the LSN', () => {
    expect(decideTable(facts({ sourceVersion: '800' }))).toMatchObject({ reason: 'source restored', detail: expect.stringMatching(/below the mirror's LSN/) });
  });

  it('sees a restored source by its fingerprint even when new writes pushed the version past the LSN', () => {
    const restored = { ...fingerprint, timeline: '2' };
    expect(decideTable(facts({ fingerprint: restored, sourceVersion: '5000' }))).toMatchObject({
      reason: 'source restored', detail: 'source fingerprint changed (timeline)',
    });
  });

  it('repopulates when the changes since the LSN are gone', () => {
    expect(decideTable(facts({ minValidVersion: '1001' }))).toMatchObject({ reason: 'tracking expired' });
    expect(decideTable(facts({ minValidVersion: '1000' }))).toEqual({ action: 'mirror' });
  });

  it('repopulates a table with no sync for longer than the retention', () => {
    expect(decideTable(facts({ state: state({ lastSyncAt: '2026-11-18T11:59:00Z' }) }))).toMatchObject({ reason: 'no sync within retention' });
  });

  it('compares versions as 64-bit numbers, not strings', () => {
    expect(decideTable(facts({ state: state({ lsn: '9' }), sourceVersion: '10', minValidVersion: '2' }))).toEqual({ action: 'mirror' });
    expect(decideTable(facts({ state: state({ lsn: '18446744073709551000' }), sourceVersion: '18446744073709551615', minValidVersion: '1' }))).toEqual({ action: 'mirror' });
  });

  it('does not call a fingerprint component the server would not disclose a change', () => {
    expect(fingerprintChanges({ ...fingerprint, timeline: 'unavailable' }, fingerprint)).toEqual([]);
    expect(fingerprintChanges(null, fingerprint)).toEqual([]);
    expect(fingerprintChanges(fingerprint, { ...fingerprint, trackingEpoch: 'e2', databaseOid: '1' })).toEqual(['databaseOid', 'trackingEpoch']);
  });
});

describe('the version rule', () => {
  it('a source behind the LSN is restored; an LSN behind min valid is expired; both compared as 64-bit numbers', () => {
    expect(discontinuity('1000', '999', null)).toMatchObject({ type: 'SourceRestored' });
    expect(discontinuity('1000', '1000', '1000')).toBeNull();
    expect(discontinuity('1000', '2000', '1001')).toMatchObject({ type: 'TrackingExpired' });
    expect(discontinuity('9', '10', '2')).toBeNull();
    expect(discontinuity('18446744073709551000', '18446744073709551615', '1')).toBeNull();
  });

  it('a restore seen by version wins over expiry; a changed fingerprint is a restore too', () => {
    expect(continuityBreak('1000', fingerprint, { sourceVersion: '900', minValidVersion: '2000', fingerprint })).toMatchObject({ type: 'SourceRestored' });
    expect(continuityBreak('1000', fingerprint, { sourceVersion: '5000', minValidVersion: '2000', fingerprint: { ...fingerprint, timeline: '2' } })).toMatchObject({
      type: 'SourceRestored',
      detail: 'source fingerprint changed (timeline)',
    });
  });
});

describe('per-table fingerprint components', () => {
  it('a changed table component means the table tracking restarted: expired, not restored', () => {
    const recorded = { ...fingerprint, 'table.trackingBegin': '10' };
    expect(continuityBreak('1000', recorded, { sourceVersion: '1200', minValidVersion: '900', fingerprint: { ...fingerprint, 'table.trackingBegin': '1000' } })).toEqual({
      type: 'TrackingExpired',
      detail: "the table's change tracking restarted (table.trackingBegin)",
    });
    expect(continuityBreak('1000', recorded, { sourceVersion: '1200', minValidVersion: '900', fingerprint: recorded })).toBeNull();
  });
});
