/** Human-readable `status`: one block per tenant, one line per table. */
import type { TableStatus } from '../../contract';
import type { TenantReport } from '../status';

export function formatStatus(rows: TenantReport[], now = Date.now()): string {
  const out: string[] = [];
  for (const row of rows) {
    out.push(`${row.tenantId}: ${row.state}${row.reason ? ` (${row.reason})` : ''}`);
    if (row.activityError) out.push(`  retrying: ${row.activityError}`);
    if (row.pendingWipe) out.push(`  wipe pending: ${row.pendingWipe === 'all' ? 'all tables' : row.pendingWipe.join(', ')}`);
    for (const notice of row.notices ?? []) out.push(`  notice: ${notice}`);
    const width = Math.max(5, ...row.tables.map((t) => t.name.length));
    if (row.tables.length) out.push(`  ${'table'.padEnd(width)}  ${'state'.padEnd(18)} ${'lsn'.padStart(12)} ${'rows'.padStart(10)}  last sync`);
    for (const t of row.tables) {
      out.push(
        `  ${t.name.padEnd(width)}  ${stateText(t).padEnd(18)} ${(t.lsn ?? '-').padStart(12)} ${(t.rows ?? '-').toString().padStart(10)}  ${t.lastSyncAt ?? '-'}${detail(t, now)}`,
      );
      for (const note of t.notes ?? []) out.push(`  ${''.padEnd(width)}  note: ${note}`);
    }
  }
  return out.join('\n');
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
