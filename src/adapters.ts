/**
 * Chooses the adapter for each side of a tenant by its configured kind. Nothing above this file knows which
 * database it talks to.
 */
import type { ChangeSource, Mirror } from './core/types';
import type { TenantConfig } from './config/schema';
import { mirrorHooks } from './config/load';
import { PgChangeSource } from './postgres/source';
import { PgMirror } from './postgres/mirror';
import { MssqlChangeSource } from './mssql/source';
import { MssqlMirror } from './mssql/mirror';

/**
 * Connections per side of one activity's pool: a split population holds `populateStreams` snapshots or shadow
 * writers at once, a cycle applying tables in parallel `applyStreams`, beside a catalog read or a fence. Pools
 * open connections only when asked and close idle ones.
 */
function maxConnections(tenant: TenantConfig): number {
  return Math.max(4, Math.max(tenant.populateStreams, tenant.applyStreams) + 2);
}

export function openSource(tenant: TenantConfig): ChangeSource {
  const opts = { url: tenant.source.url, tenant: tenant.id, maxConnections: maxConnections(tenant) };
  return tenant.source.kind === 'postgres' ? new PgChangeSource({ ...opts, tracking: tenant.source.tracking }) : new MssqlChangeSource(opts);
}

export function openMirror(tenant: TenantConfig): Mirror {
  const opts = { url: tenant.mirror.url, schema: tenant.mirror.schema, tenant: tenant.id, hooks: mirrorHooks(tenant.mirror.hooks), maxConnections: maxConnections(tenant) };
  return tenant.mirror.kind === 'postgres' ? new PgMirror(opts) : new MssqlMirror(opts);
}
