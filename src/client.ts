/**
 * Operator-side calls: start tenants, pause, resume, force a wipe, list the fleet. Used by the CLI and tests;
 * a tenant's status is src/status.ts.
 */
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import {
  forceWipeUpdate,
  MIRROR_STATE_KEY,
  pauseSignal,
  pauseTablesUpdate,
  resumeSignal,
  resumeTablesUpdate,
  syncNowSignal,
  TASK_QUEUE,
  TENANT_ID_KEY,
  workflowIdFor,
  type ForceWipeAck,
  type TablesAck,
} from '../contract';
import { tenantMirrorWorkflow } from '../workflows/tenant-mirror';

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

export async function forceWipe(client: Client, tenantId: string, tables?: string[]): Promise<ForceWipeAck> {
  return client.workflow.getHandle(workflowIdFor(tenantId)).executeUpdate(forceWipeUpdate, { args: [{ tables }] });
}

export async function pauseTenant(client: Client, tenantId: string, reason?: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(pauseSignal, reason);
}

export async function resumeTenant(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(resumeSignal);
}

/** Pauses these tables alone; the update is refused (with the reason) for a table the tenant does not mirror. */
export async function pauseTables(client: Client, tenantId: string, tables: string[], reason?: string): Promise<TablesAck> {
  return client.workflow.getHandle(workflowIdFor(tenantId)).executeUpdate(pauseTablesUpdate, { args: [reason ? { tables, reason } : { tables }] });
}

export async function resumeTables(client: Client, tenantId: string, tables: string[]): Promise<TablesAck> {
  return client.workflow.getHandle(workflowIdFor(tenantId)).executeUpdate(resumeTablesUpdate, { args: [{ tables }] });
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
