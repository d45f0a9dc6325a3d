/**
 * Activity options derive from the tenant's policy: retries back off up to a bound that never outlives the
 * retention, and give the workflow back control well before it, so the 7-day rule can act. Failure types the
 * workflow acts on itself (contract/failures.ts) are never retried by the server.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { TenantActivities } from '../contract/activities';
import { NON_RETRYABLE_TYPES } from '../contract/failures';
import type { TenantPolicy } from '../contract/payloads';

/** A sync session returns at least this often, so the workflow re-reads configuration and catalog. */
const SESSION_MAX_MS = 60 * 60 * 1000;

/** A session returns within a fraction of the retention, so the 7-day rule is checked in time. */
export function sessionLimit(policy: TenantPolicy): number {
  return Math.max(10_000, Math.min(SESSION_MAX_MS, Math.floor(policy.retentionMs / 8)));
}

export function activitiesFor(policy: TenantPolicy): TenantActivities {
  const maximumInterval = Math.max(1_000, Math.min(5 * 60_000, Math.floor(policy.retentionMs / 20)));
  const retryWindow = Math.max(60_000, Math.floor(policy.retentionMs / 4));
  const retry = { initialInterval: 1_000, backoffCoefficient: 2, maximumInterval, nonRetryableErrorTypes: [...NON_RETRYABLE_TYPES] };
  const short = proxyActivities<TenantActivities>({
    startToCloseTimeout: '10 minutes',
    scheduleToCloseTimeout: retryWindow,
    retry,
  });
  const populate = proxyActivities<TenantActivities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: '30 seconds',
    scheduleToCloseTimeout: retryWindow,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry,
  });
  const session = proxyActivities<TenantActivities>({
    startToCloseTimeout: sessionLimit(policy) + 10 * 60_000,
    // The session heartbeats every 5 minutes (heartbeats are billable). A dead worker's session is moved within
    // seconds by the fleet's reaper (src/fleet/reaper.ts); this timeout is the last resort without one.
    heartbeatTimeout: '11 minutes',
    scheduleToCloseTimeout: sessionLimit(policy) + retryWindow,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry,
  });
  return {
    prepareTenant: short.prepareTenant,
    wipeTables: short.wipeTables,
    populateTable: populate.populateTable,
    syncSession: session.syncSession,
  };
}
