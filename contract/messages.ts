/**
 * The tenant workflow's messages, defined once for the workflow, the client, the CLI and the tests. Operators
 * reach them through the Temporal CLI and UI by these names.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MirrorState, TenantStatus } from './payloads';

/** `{}` wipes every table. */
export interface ForceWipeRequest {
  /** Tables to wipe and repopulate; all tables when absent or empty. */
  tables?: string[];
}

export interface ForceWipeAck {
  accepted: true;
  tables: string[] | 'all';
  /** State the tenant was in when the request arrived. */
  state: MirrorState;
}

export const forceWipeUpdate = defineUpdate<ForceWipeAck, [ForceWipeRequest]>('forceWipe');
export const pauseSignal = defineSignal<[string?]>('pause');
export const resumeSignal = defineSignal('resume');
export const syncNowSignal = defineSignal('syncNow');
export const statusQuery = defineQuery<TenantStatus>('status');
