/**
 * The contract between the tenant workflow, its activities, the client and the CLI: ids, messages, payloads,
 * activity signatures and the one failure table. It imports none of them (only @temporalio/workflow's message
 * constructors), so each side depends on it and never on the other.
 */
export * from './ids';
export * from './failures';
export * from './payloads';
export * from './messages';
export type { TenantActivities } from './activities';
