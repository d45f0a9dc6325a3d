/** Human-readable `status`: one block per tenant, one line per table. */
import type { TenantReport } from '../status';

export function formatStatus(rows: TenantReport[]): string {
  const out: string[] = [];
  for (const row of rows) {
    out.push(`${row.tenantId}: ${row.state}${row.reason ? ` (${row.reason})` : ''}`);
    if (row.activityError) out.push(`  retrying: ${row.activityError}`);
    if (row.pendingWipe) out.push(`  wipe pending: ${row.pendingWipe === 'all' ? 'all tables' : row.pendingWipe.join(', ')}`);
    for (const notice of row.notices ?? []) out.push(`  notice: ${notice}`);
    const width = Math.max(5, ...row.tables.map((t) => t.name.length));
    if (row.tables.length) out.push(`  ${'table'.padEnd(width)}  ${'state'.padEnd(11)} ${'lsn'.padStart(12)} ${'rows'.padStart(10)}  last sync`);
    for (const t of row.tables) {
      out.push(
        `  ${t.name.padEnd(width)}  ${t.state.padEnd(11)} ${(t.lsn ?? '-').padStart(12)} ${(t.rows ?? '-').toString().padStart(10)}  ${t.lastSyncAt ?? '-'}${t.error ? `  ${t.error}` : ''}`,
      );
    }
  }
  return out.join('\n');
}

export function printStatus(rows: TenantReport[]): void {
  console.log(formatStatus(rows));
}
