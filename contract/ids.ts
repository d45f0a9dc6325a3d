/** Names that operators, the client and the worker share: task queue, workflow ids, search attributes. */
import type { SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';

export const TASK_QUEUE = 'tenant-mirror';
export const WORKFLOW_ID_PREFIX = 'tenant-mirror:';

export function workflowIdFor(tenantId: string): string {
  return `${WORKFLOW_ID_PREFIX}${tenantId}`;
}

export const TENANT_ID_KEY: SearchAttributeKey<typeof SearchAttributeType.KEYWORD> = { name: 'TenantId', type: 'KEYWORD' };
export const MIRROR_STATE_KEY: SearchAttributeKey<typeof SearchAttributeType.KEYWORD> = { name: 'MirrorState', type: 'KEYWORD' };
