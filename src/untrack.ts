/**
 * Removing everything of ours from a tenant's source: the change tracking of the tables the tenant mirrors (its
 * configuration includes them, or its mirror still registers them). Other tenants may track other tables of the
 * same source database; their tracking stays.
 */
import { openMirror, openSource } from './adapters';
import { tableFilter } from './config/load';
import type { TenantConfig } from './config/schema';

export async function untrackTenant(tenant: TenantConfig, only?: string[]): Promise<string[]> {
  const source = openSource(tenant);
  const mirror = openMirror(tenant);
  try {
    const registered = new Set((await mirror.readState().catch(() => [])).map((s) => s.table));
    const included = tableFilter(tenant.tables);
    const named = only?.length ? new Set(only) : null;
    return await source.untrack((name) => (named ? named.has(name) : included(name) || registered.has(name)), { removeUnused: !named });
  } finally {
    await Promise.allSettled([source.close(), mirror.close()]);
  }
}
