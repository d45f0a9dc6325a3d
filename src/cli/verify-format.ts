/**
 * Human-readable `verify`: one line per table. Keys are shown to the operator at the terminal, never written to a
 * log; row values are never shown.
 */
import type { KeyValues } from '../core/types';
import type { Difference } from '../verify/compare';
import type { TableVerdict, VerifyReport } from '../verify/verify';

const KIND: Record<Difference['kind'], string> = { missing: 'missing in the mirror', extra: 'extra in the mirror', value: 'value differs' };

/** `id=42`, or `(order_id=5, line_no=2)`; a value that is not plain is quoted. */
export function formatKey(columns: string[], key: KeyValues): string {
  const parts = columns.map((c, i) => `${c}=${formatValue(key[i] ?? null)}`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
}

function formatValue(v: string | null): string {
  if (v === null) return 'NULL';
  return /^[\w.:@+-]+$/.test(v) ? v : JSON.stringify(v);
}

/** Keys the mirror has yet to receive are not counted (see verify.ts). */
function leftOut(n: number): string {
  return n ? `; ${n.toLocaleString('en-US')} key${n === 1 ? '' : 's'} changed at the source since the mirror's LSN left out` : '';
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One table's verdict. */
export function formatVerdict(v: TableVerdict): string {
  const name = `${v.table}:`;
  switch (v.verdict) {
    case 'equal':
      return `${name} equal: ${v.rows.toLocaleString('en-US')} rows${v.keyless ? ', compared whole (no key)' : ''}${leftOut(v.leftOut)} (${seconds(v.ms)})`;
    case 'differs': {
      const counts = `${v.sourceRows.toLocaleString('en-US')} rows at the source, ${v.mirrorRows.toLocaleString('en-US')} in the mirror`;
      if (v.keys === null) return `${name} differs: compared whole (no key): ${counts}; a keyless table is refreshed periodically, changes since its last refresh show here (${seconds(v.ms)})`;
      const examples = v.examples.map((d) => `${formatKey(v.keyColumns, d.key)} (${KIND[d.kind]})`).join(', ');
      return `${name} differs: ${v.keys.toLocaleString('en-US')} key${v.keys === 1 ? '' : 's'}, e.g. ${examples} — ${counts}${leftOut(v.leftOut)} (${seconds(v.ms)})`;
    }
    case 'unstable':
      return `${name} ${v.reason} (${seconds(v.ms)})`;
    case 'not-compared':
      return `${name} not compared: ${v.reason}`;
  }
}

export function formatVerifySummary(report: VerifyReport): string {
  const count = (k: TableVerdict['verdict']): number => report.tables.filter((t) => t.verdict === k).length;
  const parts = [`${count('equal')} equal`];
  if (count('differs')) parts.push(`${count('differs')} differ${count('differs') === 1 ? 's' : ''}`);
  if (count('unstable')) parts.push(`${count('unstable')} without a stable comparison`);
  if (count('not-compared')) parts.push(`${count('not-compared')} not compared`);
  const lines = report.skipped.map((s) => `${s.name}: skipped (not mirrored): ${s.reason}`);
  lines.push(`tenant ${report.tenant}: ${report.tables.length} table${report.tables.length === 1 ? '' : 's'}, ${parts.join(', ')}`);
  return lines.join('\n');
}

/** 0: every table equal; 1: a table differs or could not be compared. */
export function verifyExitCode(report: VerifyReport): number {
  return report.tables.every((t) => t.verdict === 'equal') ? 0 : 1;
}
