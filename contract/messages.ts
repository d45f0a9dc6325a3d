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

/** Tables to pause or resume: the tenant's other tables go on mirroring. */
export interface TablesRequest {
  tables: string[];
  /** Shown in status for a paused table. */
  reason?: string;
}

export interface TablesAck {
  accepted: true;
  tables: string[];
}

/** The update answers with an acknowledgement, or rejects an invalid request; the signal of the same name cannot answer, so an invalid one is recorded in status. */
export const forceWipeUpdate = defineUpdate<ForceWipeAck, [ForceWipeRequest]>('forceWipe');
export const forceWipeSignal = defineSignal<[ForceWipeRequest?]>('forceWipe');
/** One table or a few stop mirroring (their tracking keeps the changes); `resumeTables` catches them up. A resync of one table is `forceWipe` with `tables`. */
export const pauseTablesUpdate = defineUpdate<TablesAck, [TablesRequest]>('pauseTables');
export const resumeTablesUpdate = defineUpdate<TablesAck, [TablesRequest]>('resumeTables');
export const pauseSignal = defineSignal<[string?]>('pause');
export const resumeSignal = defineSignal('resume');
export const syncNowSignal = defineSignal('syncNow');
export const statusQuery = defineQuery<TenantStatus>('status');

/** Every signal the workflow handles; any other name is recorded as ignored. */
export const SIGNAL_NAMES = ['forceWipe', 'pause', 'resume', 'syncNow'] as const;
