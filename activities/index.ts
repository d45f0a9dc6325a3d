/**
 * The activities of the tenant workflow, built by a factory that receives their dependencies (configuration and
 * adapter constructors), so the worker wires real databases and tests can wire whatever they need. Their
 * signatures are the contract's (contract/activities.ts).
 */
import type { TenantActivities } from '../contract';
import type { ActivityDeps } from './deps';
import { prepareTenant } from './prepare';
import { populateTable } from './populate';
import { syncSession } from './session';
import { wipeTables } from './wipe';

export type { ActivityDeps } from './deps';
export type { TenantActivities } from '../contract';

export function createActivities(deps: ActivityDeps): TenantActivities {
  return {
    prepareTenant: (tenantId, opts) => prepareTenant(deps, tenantId, opts),
    populateTable: (tenantId, table) => populateTable(deps, tenantId, table),
    syncSession: (tenantId, input) => syncSession(deps, tenantId, input),
    wipeTables: (tenantId, input) => wipeTables(deps, tenantId, input),
  };
}
