/**
 * Which of a source's tables a tenant mirrors, and why the others are not: the one selection that prepare (the
 * workflow's bootstrap), `tenant-mirror check` and `tenant-mirror verify` share.
 */
import { tableFilter } from './config/load';
import type { TenantConfig } from './config/schema';
import type { Mirror, SkippedTable, SourceTables, TableSchema } from './core/types';

export interface TableSelection {
  /** Mirrored: with a key (change tracking) or without (refreshed whole). */
  tables: TableSchema[];
  /** Included by the configuration but not mirrorable, with the reason. */
  skipped: SkippedTable[];
}

/** The tables the tenant's include/exclude rules admit, split into those it mirrors and those it cannot. */
export function selectTables(listed: SourceTables, tenant: Pick<TenantConfig, 'tables' | 'keyless'>, mirror: Pick<Mirror, 'relationKey'>): TableSelection {
  const included = tableFilter(tenant.tables);
  const { tables, skipped } = mirrorable(listed.tables.filter((t) => included(t.name)), tenant, mirror);
  skipped.push(...listed.skipped.filter((s) => included(s.name)));
  return { tables, skipped };
}

/**
 * The tables to mirror, and the ones that cannot be: a name the mirror reserves, two source tables that would be one
 * table in the mirror (the same name after name mapping: `"sales.orders"` in public and `sales.orders`, case where
 * the mirror ignores it, names fitted to a length limit), and keyless tables when the tenant skips them.
 */
function mirrorable(listed: TableSchema[], tenant: Pick<TenantConfig, 'keyless'>, mirror: Pick<Mirror, 'relationKey'>): { tables: TableSchema[]; skipped: { name: string; reason: string }[] } {
  const skipped: { name: string; reason: string }[] = [];
  const byKey = new Map<string, TableSchema[]>();
  for (const table of listed) {
    if (table.primaryKey.length === 0 && tenant.keyless === 'skip') {
      skipped.push({ name: table.name, reason: 'no primary key nor unique index over NOT NULL columns (keyless: skip)' });
      continue;
    }
    let key: string;
    try {
      key = mirror.relationKey(table.name);
    } catch (err) {
      skipped.push({ name: table.name, reason: err instanceof Error ? err.message : String(err) });
      continue;
    }
    byKey.set(key, [...(byKey.get(key) ?? []), table]);
  }
  const tables: TableSchema[] = [];
  for (const group of byKey.values()) {
    if (group.length === 1) {
      tables.push(group[0]!);
      continue;
    }
    const sources = group.map((t) => JSON.stringify(`${t.source.schema}.${t.source.table}`)).join(' and ');
    for (const table of group) {
      skipped.push({ name: table.name, reason: `source tables ${sources} would be one table in the mirror: rename one, or exclude all but one` });
    }
  }
  return { tables, skipped };
}

