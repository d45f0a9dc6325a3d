import { describe, expect, it } from 'vitest';
import { formatWatchFrame } from '../../src/cli/watch';
import type { TenantReport } from '../../src/status';
import type { TableStatus } from '../../contract';

const now = Date.parse('2026-12-02T19:40:00Z');

function table(over: Partial<TableStatus> & { name: string }): TableStatus {
  return { state: 'mirroring', lsn: '100', rows: 10, lastSyncAt: null, error: null, ...over };
}

function report(tables: TableStatus[]): TenantReport {
  return { tenantId: 'acme', state: 'populating', reason: 'orders: new table', tables, lastSuccessAt: null, pendingWipe: null, notices: [], stale: null, running: true, activityError: null };
}

describe('status --watch frame', () => {
  const tables = [
    table({ name: 'orders', state: 'populating', rows: 250_000, estimatedRows: 1_000_000 }),
    table({ name: 'customers', lagSeconds: 1, lastCycle: { inserts: 3, updates: 1_200, deletes: 0, at: '2026-12-02T19:39:58.120Z' } }),
    table({ name: 'notes', lagSeconds: 0, lastCycle: null }),
    table({ name: 'audit', state: 'skipped', error: 'no primary key' }),
    table({ name: 'big', state: 'paused', error: 'partner migration' }),
  ];

  it('draws a bar per populating table, with the rate and time left measured against the previous frame', () => {
    const first = formatWatchFrame(report(tables), null, now - 2_000);
    expect(first.text).toContain('orders     ██████░░░░░░░░░░░░░░░░░░ 250,000 / 1,000,000 rows   - rows/s   ETA -');
    const previous = { at: now - 2_000, rows: new Map([['orders', 150_000]]) };
    const { text, sample } = formatWatchFrame(report(tables), previous, now);
    expect(text.split('\n')[0]).toBe('acme: populating (orders: new table)   2026-12-02 19:40:00 UTC');
    expect(text).toContain('250,000 / 1,000,000 rows   50,000 rows/s   ETA 15s');
    expect(sample.rows.get('orders')).toBe(250_000);
  });

  it('shows lag and the last cycle per mirroring table, and why the others are not mirroring', () => {
    const { text } = formatWatchFrame(report(tables), null, now);
    expect(text).toContain('customers  mirroring            lag    1s   last cycle +3 ~1,200 -0 at 19:39:58');
    expect(text).toContain('notes      mirroring            lag    0s   no change in the last day');
    expect(text).toContain('audit      skipped: no primary key');
    expect(text).toContain('big        paused: partner migration');
  });

  it('a population without an estimate has an empty bar and no time left', () => {
    const { text } = formatWatchFrame(report([table({ name: 'orders', state: 'populating', rows: 5 })]), null, now);
    expect(text).toContain('orders  ░░░░░░░░░░░░░░░░░░░░░░░░ 5 rows');
  });
});
