/**
 * Operator-side calls: start tenants, read their status, pause, resume, force a wipe. Used by the CLI and tests.
 */
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import {
  forceWipeUpdate,
  MIRROR_STATE_KEY,
  pauseSignal,
  resumeSignal,
  statusQuery,
  syncNowSignal,
  TASK_QUEUE,
  TENANT_ID_KEY,
  workflowIdFor,
  type ForceWipeAck,
  type SessionHeartbeat,
  type TenantStatus,
} from '../contract';
import { tenantMirrorWorkflow } from '../workflows/tenant-mirror';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';

export interface TenantClient {
  client: Client;
  close(): Promise<void>;
}

export async function connectClient(address: string, namespace: string): Promise<TenantClient> {
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection, namespace }), close: () => connection.close() };
}

/** Starts the tenant's workflow; an already running one is left as it is. */
export async function startTenant(client: Client, tenantId: string): Promise<'started' | 'already running'> {
  try {
    await client.workflow.start(tenantMirrorWorkflow, {
      workflowId: workflowIdFor(tenantId),
      taskQueue: TASK_QUEUE,
      args: [{ tenantId }],
      typedSearchAttributes: [
        { key: TENANT_ID_KEY, value: tenantId },
        { key: MIRROR_STATE_KEY, value: 'bootstrapping' },
      ],
    });
    return 'started';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already running';
    throw err;
  }
}

/**
 * The workflow's status, with live per-table figures from the running sync session's heartbeat (they never enter
 * history) and the failure of an activity that is retrying right now.
 */
export async function tenantStatus(client: Client, tenantId: string): Promise<TenantStatus & { running: boolean; activityError: string | null }> {
  const handle = client.workflow.getHandle(workflowIdFor(tenantId));
  const description = await handle.describe();
  const running = description.status.name === 'RUNNING';
  const status = running ? await handle.query(statusQuery) : emptyStatus(tenantId);
  let activityError: string | null = null;
  const raw = description.raw.pendingActivities ?? [];
  for (const pending of raw) {
    const failure = pending.lastFailure;
    if (failure?.message && !recoveredSinceFailure(pending)) {
      activityError = `${pending.activityType?.name ?? 'activity'} attempt ${pending.attempt}: ${failure.message}`;
    }
    if (pending.activityType?.name === 'syncSession' && pending.heartbeatDetails?.payloads?.length) {
      const [beat] = await Promise.all(
        pending.heartbeatDetails.payloads.map((p) => client.options.loadedDataConverter.payloadConverter.fromPayload<SessionHeartbeat>(p)),
      );
      for (const live of beat?.tables ?? []) {
        const table = status.tables.find((t) => t.name === live.name);
        if (table) Object.assign(table, { lsn: live.lsn, rows: live.rows, lastSyncAt: live.lastSyncAt });
      }
    }
  }
  return { ...status, running, activityError };
}

/**
 * The server keeps an activity's last failure until the activity ends, even when the retry that followed is
 * running fine. A retry that has heartbeated since it started has recovered: its old failure is history.
 */
function recoveredSinceFailure(pending: PendingActivity): boolean {
  const started = optionalTsToMs(pending.lastStartedTime);
  const heartbeat = optionalTsToMs(pending.lastHeartbeatTime);
  return pending.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED &&
    started !== undefined && heartbeat !== undefined && heartbeat > started;
}

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

function emptyStatus(tenantId: string): TenantStatus {
  return { tenantId, state: 'paused', reason: 'workflow is not running', tables: [], lastSuccessAt: null, pendingWipe: null };
}

export async function forceWipe(client: Client, tenantId: string, tables?: string[]): Promise<ForceWipeAck> {
  return client.workflow.getHandle(workflowIdFor(tenantId)).executeUpdate(forceWipeUpdate, { args: [{ tables }] });
}

export async function pauseTenant(client: Client, tenantId: string, reason?: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(pauseSignal, reason);
}

export async function resumeTenant(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(resumeSignal);
}

export async function syncNow(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(syncNowSignal);
}

/** Tenant workflows known to the server, newest first. */
export async function listTenantWorkflows(client: Client): Promise<{ tenantId: string; state: string; status: string }[]> {
  const out: { tenantId: string; state: string; status: string }[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'tenantMirrorWorkflow'` })) {
    const tenantId = wf.typedSearchAttributes.get(TENANT_ID_KEY) ?? wf.workflowId.replace(/^tenant-mirror:/, '');
    out.push({ tenantId, state: wf.typedSearchAttributes.get(MIRROR_STATE_KEY) ?? 'unknown', status: wf.status.name });
  }
  return out;
}

export { WorkflowNotFoundError };
