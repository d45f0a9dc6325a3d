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
/** How many of the tenant's tables are failed (waiting out a backoff), so `FailedTables > 0` finds them across the fleet. */
export const FAILED_TABLES_KEY: SearchAttributeKey<typeof SearchAttributeType.INT> = { name: 'FailedTables', type: 'INT' };

/** Our custom search attributes and their types, as a cluster registers them (`temporal operator search-attribute create`). */
export const SEARCH_ATTRIBUTES: Readonly<Record<string, 'Keyword' | 'Int'>> = {
  [TENANT_ID_KEY.name]: 'Keyword',
  [MIRROR_STATE_KEY.name]: 'Keyword',
  [FAILED_TABLES_KEY.name]: 'Int',
};
