/**
 * `tenant-mirror check`: what a tenant's first start would meet, found without changing anything. Both connections,
 * the rights each side needs (each adapter's read-only preflight), the mirror schema and what it registers, and
 * per table whether it will be mirrored with change tracking, refreshed whole or skipped, and why: one finding per
 * line, each `ok`, `warn` or `blocker` (mirroring, or that table, cannot work until it is fixed).
 */
import ms from 'ms';
import { tableFilter } from '../config/load';
import type { TenantConfig } from '../config/schema';
import type { ChangeSource, Finding, Mirror, TableSchema } from '../core/types';
import { selectTables } from '../selection';

export interface CheckReport {
  tenant: string;
  /** A side that could not be reached: nothing more could be checked. */
  unreachable: { side: 'source' | 'mirror'; message: string }[];
  findings: Finding[];
}

export interface CheckSides {
  source: ChangeSource;
  mirror: Mirror;
}

export async function checkTenant(tenant: TenantConfig, sides: CheckSides): Promise<CheckReport> {
  const { source, mirror } = sides;
  const pings = await Promise.allSettled([source.ping(), mirror.ping()]);
  const unreachable = (['source', 'mirror'] as const).flatMap((side, i) => {
    const p = pings[i]!;
    return p.status === 'rejected' ? [{ side, message: p.reason instanceof Error ? p.reason.message : String(p.reason) }] : [];
  });
  if (unreachable.length) return { tenant: tenant.id, unreachable, findings: [] };

  const listed = await source.listTables(() => true);
  const { tables, skipped } = selectTables(listed, tenant, mirror);
  const plan = { tables, retentionMs: tenant.retention };
  const [fromSource, fromMirror, state] = await Promise.all([source.preflight(plan), mirror.preflight(plan), mirror.readState()]);

  const findings: Finding[] = [...fromSource, ...fromMirror].filter((f) => !f.subject.startsWith('table '));
  const perTable = new Map<string, Finding[]>();
  for (const f of [...fromSource, ...fromMirror]) {
    if (!f.subject.startsWith('table ')) continue;
    perTable.set(f.subject, [...(perTable.get(f.subject) ?? []), f]);
  }
  for (const table of [...tables].sort(byName)) findings.push(tableFinding(table, tenant, perTable.get(`table ${table.name}`) ?? []));
  for (const s of [...skipped].sort(byName)) findings.push({ level: 'warn', subject: `table ${s.name}`, message: `skipped: ${s.reason}` });

  const included = tableFilter(tenant.tables);
  const excluded = [...listed.tables, ...listed.skipped].map((t) => t.name).filter((n) => !included(n)).sort();
  if (excluded.length) {
    findings.push({ level: 'ok', subject: 'tables', message: `${excluded.length} excluded by the configuration (tables.include / tables.exclude): ${preview(excluded)}` });
  }
  findings.push(...registeredElsewhere(state.map((s) => s.table), new Set(tables.map((t) => t.name)), new Set([...listed.tables, ...listed.skipped].map((t) => t.name))));
  return { tenant: tenant.id, unreachable: [], findings };
}

/** One line per table: how it will be mirrored, and what each side found (the worst level wins). */
function tableFinding(table: TableSchema, tenant: TenantConfig, found: Finding[]): Finding {
  const how =
    table.primaryKey.length === 0
      ? `refreshed whole every ${ms(tenant.refreshInterval, { long: true })} (no primary key nor unique index over NOT NULL columns)`
      : table.keyIndex
        ? `mirrored with change tracking, keyed by unique index ${JSON.stringify(table.keyIndex)} (no primary key)`
        : 'mirrored with change tracking';
  const level = found.some((f) => f.level === 'blocker') ? 'blocker' : found.some((f) => f.level === 'warn') ? 'warn' : 'ok';
  // The worst first: a blocker is what the line is about.
  const rank = { blocker: 0, warn: 1, ok: 2 } as const;
  const details = [...found].sort((a, b) => rank[a.level] - rank[b.level]).map((f) => f.message);
  return { level, subject: `table ${table.name}`, message: [how, ...details].join('; ') };
}

/** Tables the mirror registers that this selection no longer mirrors: what the next start does with them. */
function registeredElsewhere(registered: string[], selected: Set<string>, atSource: Set<string>): Finding[] {
  return registered
    .filter((name) => !selected.has(name))
    .sort()
    .map((name) =>
      atSource.has(name)
        ? { level: 'ok' as const, subject: `table ${name}`, message: 'no longer mirrored: at the next start its change tracking is removed and its mirror table left to the partner' }
        : { level: 'warn' as const, subject: `table ${name}`, message: 'registered in the mirror, but the source has no such table any more: its mirror table is dropped at the next start' },
    );
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function preview(names: string[]): string {
  return names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
}
