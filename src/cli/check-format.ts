/** Human-readable `check`: one line per finding, and a last line that says whether anything blocks. */
import type { Finding } from '../core/types';
import type { CheckReport } from '../check/check';

export function formatFinding(f: Finding): string {
  return `${f.level.padEnd(7)}  ${f.subject}: ${f.message}`;
}

export function formatCheck(report: CheckReport): string {
  if (report.unreachable.length) return report.unreachable.map((u) => `${'error'.padEnd(7)}  ${u.side}: ${u.message}`).join('\n');
  const lines = report.findings.map(formatFinding);
  const blockers = report.findings.filter((f) => f.level === 'blocker').length;
  const warnings = report.findings.filter((f) => f.level === 'warn').length;
  lines.push(
    blockers
      ? `tenant ${report.tenant}: ${blockers} blocker${blockers === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}: fix the blockers before starting it`
      : `tenant ${report.tenant}: no blockers${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}`,
  );
  return lines.join('\n');
}

/** 2: a side could not be reached; 1: a blocker; 0: none. */
export function checkExitCode(report: CheckReport): number {
  if (report.unreachable.length) return 2;
  return report.findings.some((f) => f.level === 'blocker') ? 1 : 0;
}
