/** What `status` and `list` print: human-readable blocks and lines, or JSON for scripts. */
import type { TableStatus } from '../../contract';
import type { TenantConfig } from '../config/schema';
import type { TenantReport } from '../status';

export function formatStatus(rows: TenantReport[], now = Date.now()): string {
  const out: string[] = [];
  for (const row of rows) {
    out.push(`${row.tenantId}: ${row.state}${row.stale ? ` (${row.stale.why})` : row.reason ? ` (${row.reason})` : ''}`);
    if (row.activityError) out.push(`  retrying: ${row.activityError}`);
    if (row.pendingWipe) out.push(`  wipe pending: ${row.pendingWipe === 'all' ? 'all tables' : row.pendingWipe.join(', ')}`);
    for (const notice of row.notices ?? []) out.push(`  notice: ${notice}`);
    if (row.slot !== undefined) out.push(`  ${slotText(row.slot)}`);
    const width = Math.max(5, ...row.tables.map((t) => t.name.length));
    if (row.tables.length) out.push(`  ${'table'.padEnd(width)}  ${'state'.padEnd(18)} ${'lsn'.padStart(12)} ${'rows'.padStart(10)} ${'lag'.padStart(7)}  last sync`);
    for (const t of row.tables) {
      out.push(
        `  ${t.name.padEnd(width)}  ${stateText(t).padEnd(18)} ${(t.lsn ?? '-').padStart(12)} ${(t.rows ?? '-').toString().padStart(10)} ${lagText(t.lagSeconds).padStart(7)}  ${t.lastSyncAt ?? '-'}${detail(t, now)}`,
      );
      for (const note of t.notes ?? []) out.push(`  ${''.padEnd(width)}  note: ${note}`);
    }
  }
  return out.join('\n');
}

export function statusJson(row: TenantReport) {
  return {
    tenantId: row.tenantId,
    state: row.state,
    stale: row.stale,
    reason: row.reason,
    error: row.activityError,
    notices: row.notices ?? [],
    ...(row.slot !== undefined ? { slot: row.slot } : {}),
    tables: row.tables.map((t) => ({
      name: t.name,
      state: t.state,
      mode: t.mode ?? 'tracked',
      lsn: t.lsn,
      rows: t.rows,
      lastSyncAt: t.lastSyncAt,
      lagSeconds: t.lagSeconds ?? null,
      error: t.error,
      notes: t.notes ?? [],
      failure: t.failure ?? null,
    })),
  };
}

/** One tenant in `list`: its state, its tables by state, its worst lag and its last error. */
export function listEntry(row: TenantReport, tenant: TenantConfig) {
  const count = (state: TableStatus['state']): number => row.tables.filter((t) => t.state === state).length;
  const lags = row.tables.map((t) => t.lagSeconds).filter((l): l is number => typeof l === 'number');
  const failed = row.tables.find((t) => t.state === 'failed' && t.failure);
  return {
    tenantId: row.tenantId,
    state: row.state,
    staleSeconds: row.stale?.seconds ?? null,
    tables: { total: row.tables.length, mirroring: count('mirroring'), populating: count('populating'), failed: count('failed'), paused: count('paused'), skipped: count('skipped') },
    worstLagSeconds: lags.length ? Math.max(...lags) : null,
    lastError: row.activityError ?? (failed?.failure ? `${failed.name}: ${failed.failure.type}: ${failed.failure.message}` : null),
    route: `${tenant.source.kind} → ${tenant.mirror.kind} (schema ${tenant.mirror.schema})`,
  };
}

export function formatList(entries: ReturnType<typeof listEntry>[]): string {
  const width = Math.max(6, ...entries.map((e) => e.tenantId.length));
  const lines = [`${'tenant'.padEnd(width)}  ${'state'.padEnd(14)} ${'tables m/p/f'.padEnd(13)} ${'worst lag'.padStart(9)}  last error`];
  for (const e of entries) {
    const state = e.staleSeconds !== null ? `stale ${e.staleSeconds}s` : e.state;
    const tables = `${e.tables.mirroring}/${e.tables.populating}/${e.tables.failed}`;
    lines.push(`${e.tenantId.padEnd(width)}  ${state.padEnd(14)} ${tables.padEnd(13)} ${lagText(e.worstLagSeconds).padStart(9)}  ${e.lastError ?? '-'}`);
  }
  return lines.join('\n');
}

/** The replication slot of a logical-mode source: what it retains is the source's disk at risk. */
export function slotText(slot: TenantReport['slot']): string {
  if (!slot) return 'replication slot: not readable now (or not set up yet)';
  const retained = slot.retainedBytes === null ? 'no WAL retained' : `retains ${(slot.retainedBytes / 1024 / 1024).toFixed(1)} MB of WAL`;
  return `replication slot ${slot.slot}: ${slot.walStatus ?? 'gone'}, ${retained}, last ingested ${slot.ingestedAt}`;
}

function lagText(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '-';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function stateText(t: TableStatus): string {
  return t.mode === 'refresh' && t.state === 'mirroring' ? 'mirroring (refresh)' : t.state;
}

function detail(t: TableStatus, now: number): string {
  if (t.state === 'failed' && t.failure) {
    const wait = Math.max(0, Math.round((Date.parse(t.failure.retryAt) - now) / 1000));
    return `  ${t.failure.type} (attempt ${t.failure.attempts}, next try in ${wait} s): ${t.failure.message}`;
  }
  return t.error ? `  ${t.error}` : '';
}

export function printStatus(rows: TenantReport[]): void {
  console.log(formatStatus(rows));
}
