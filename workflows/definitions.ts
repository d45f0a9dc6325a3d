/**
 * The tenant workflow's public surface: ids, messages, search attributes and the shapes that cross history.
 * Defined once here and imported by the workflow, the client, the CLI and the tests. Everything here is
 * metadata (names, versions, counts): row data never passes through workflow history.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';

export const TASK_QUEUE = 'tenant-mirror';
export const WORKFLOW_ID_PREFIX = 'tenant-mirror:';

export function workflowIdFor(tenantId: string): string {
  return `${WORKFLOW_ID_PREFIX}${tenantId}`;
}

export type MirrorState = 'bootstrapping' | 'populating' | 'mirroring' | 'paused' | 'wiping' | 'blocked';

export type TableState = 'pending' | 'populating' | 'mirroring' | 'skipped' | 'failed';

export interface TableStatus {
  name: string;
  state: TableState;
  lsn: string | null;
  rows: number | null;
  lastSyncAt: string | null;
  error: string | null;
}

export interface TenantStatus {
  tenantId: string;
  state: MirrorState;
  /** Why the tenant is paused or blocked, or what the last failure was. */
  reason: string | null;
  tables: TableStatus[];
  lastSuccessAt: string | null;
  pendingWipe: string[] | 'all' | null;
}

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

export const TENANT_ID_KEY: SearchAttributeKey<typeof SearchAttributeType.KEYWORD> = { name: 'TenantId', type: 'KEYWORD' };
export const MIRROR_STATE_KEY: SearchAttributeKey<typeof SearchAttributeType.KEYWORD> = { name: 'MirrorState', type: 'KEYWORD' };

/** Workflow input. Carries no secret: activities resolve connections from configuration by tenant id. */
export interface TenantWorkflowInput {
  tenantId: string;
  /** State carried across continue-as-new. */
  carried?: CarriedState;
}

export interface CarriedState {
  paused: boolean;
  pauseReason: string | null;
  pendingWipe: string[] | 'all' | null;
  lastSuccessAt: number | null;
  tables: TableStatus[];
  /** The pause was the restore policy's (resuming it means: repopulate from the restored source). */
  pausedByRestore?: boolean;
  /** An operator resumed a restore pause: the next bootstrap repopulates instead of pausing again. */
  restoreAccepted?: boolean;
  /** Tables that gained a column in place and still need their rows again (the new column's values). */
  backfill?: string[];
  /** The tenant's policy as last read, so the new run's first activities already retry within its retention. */
  policy?: TenantPolicy;
}

// ---- activity payloads (metadata only) ----

/** Tenant settings the workflow needs to make decisions (no connection details). */
export interface TenantPolicy {
  pollIntervalMs: number;
  retentionMs: number;
  onSourceRestore: 'repopulate' | 'pause';
}

export type PopulateReason =
  | 'new table'
  | 'never populated'
  | 'schema replaced'
  | 'column added'
  | 'tracking expired'
  | 'source restored'
  | 'no sync within retention'
  | 'forced wipe';

export interface TablePlan {
  name: string;
  action: 'populate' | 'mirror';
  /** The source's row estimate, for tables to populate: the largest go first, so the lanes finish together. */
  estimatedRows?: number;
  reason?: PopulateReason;
  detail?: string;
}

export interface TenantPlan {
  policy: TenantPolicy;
  tables: TablePlan[];
  skipped: { name: string; reason: string }[];
  /** Mirror tables dropped because their source table is gone. */
  dropped: string[];
  /** Set when the source looks restored (version went back or fingerprint changed). */
  sourceRestored: string | null;
}

export interface PopulateResult {
  table: string;
  rows: number;
  lsn: string;
  resumed: boolean;
  durationMs: number;
}

export interface SessionInput {
  tables: string[];
  maxDurationMs: number;
}

/** Why a sync session handed control back. Restores, expired tracking and incompatible schemas are typed failures instead. */
export type SessionEndReason = 'timeLimit' | 'tablesChanged' | 'schemaChanged';

export interface SessionResult {
  reason: SessionEndReason;
  detail: string | null;
  /** Tables the workflow must repopulate (schemaChanged: an added column to backfill). */
  tables: string[];
  cycles: number;
  changesApplied: number;
  /** Epoch ms of the last successful cycle, if any. */
  lastSuccessAt: number | null;
  tableStatus: Pick<TableStatus, 'name' | 'lsn' | 'rows' | 'lastSyncAt'>[];
}

/** What the sync session heartbeats: live progress for the Temporal UI and `status`. */
export interface SessionHeartbeat {
  cycles: number;
  changesApplied: number;
  lastCycleAt: string | null;
  lastSuccessAt: number | null;
  tables: Pick<TableStatus, 'name' | 'lsn' | 'rows' | 'lastSyncAt'>[];
}

export interface WipeInput {
  tables: string[] | 'all';
  reason: string;
}
