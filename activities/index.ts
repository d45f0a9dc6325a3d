/**
 * The activities of the tenant workflow, built by a factory that receives their dependencies (configuration and
 * adapter constructors), so the worker wires real databases and tests can wire whatever they need.
 */
import type { PopulateResult, SessionInput, SessionResult, TenantPlan, WipeInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';
import { prepareTenant } from './prepare';
import { populateTable } from './populate';
import { syncSession } from './session';
import { wipeTables } from './wipe';

export type { ActivityDeps } from './deps';

export interface TenantActivities {
  prepareTenant(tenantId: string): Promise<TenantPlan>;
  populateTable(tenantId: string, table: string): Promise<PopulateResult>;
  syncSession(tenantId: string, input: SessionInput): Promise<SessionResult>;
  wipeTables(tenantId: string, input: WipeInput): Promise<{ wiped: string[] | 'all' }>;
}

export function createActivities(deps: ActivityDeps): TenantActivities {
  return {
    prepareTenant: (tenantId) => prepareTenant(deps, tenantId),
    populateTable: (tenantId, table) => populateTable(deps, tenantId, table),
    syncSession: (tenantId, input) => syncSession(deps, tenantId, input),
    wipeTables: (tenantId, input) => wipeTables(deps, tenantId, input),
  };
}
