/** The activities the tenant workflow schedules: their names and signatures, implemented in activities/. */
import type { PopulateResult, SessionInput, SessionResult, TenantPlan, WipeInput } from './payloads';

export interface TenantActivities {
  /** `waiting`: failed tables still in their backoff, which bootstrap must leave alone. */
  prepareTenant(tenantId: string, opts?: { waiting?: string[] }): Promise<TenantPlan>;
  populateTable(tenantId: string, table: string): Promise<PopulateResult>;
  syncSession(tenantId: string, input: SessionInput): Promise<SessionResult>;
  wipeTables(tenantId: string, input: WipeInput): Promise<{ wiped: string[] | 'all' }>;
}
