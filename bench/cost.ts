/**
 * 5. Temporal cost of an idle tenant. Two readings:
 * - the main tenant left idle for a window: billable actions from the Temporal server's own `action` counter
 *   (this includes activity heartbeats, which never appear in history) and history events, scaled to an hour;
 * - a tenant whose sync sessions end every 10 s (retention 80 s: a session lasts retention / 8, at least 10 s),
 *   to count what one session boundary costs in history; the default session lasts an hour, so an idle tenant
 *   pays that once an hour on top of the window's rate.
 * - calls to the Temporal frontend in the window, by operation: the tenant's own (its session's history long poll
 *   and heartbeats, workflow tasks) apart from the worker's, which a fleet pays once per worker whatever its number
 *   of tenants (task-queue polls, ListWorkers of the reaper, worker heartbeats).
 * Nothing else talks to the namespace during the windows (no status queries), so the counters are the tenant's.
 */
import { diffCounts, readActions, readFrontendCalls, sleep } from './env';
import type { Ctx } from './context';
import { MAIN_TENANT } from './population';
import { historyCount, startTenant, terminateTenant, waitPopulated } from './tenants';

export interface IdleCost {
  windowSeconds: number;
  actionsInWindow: Record<string, number>;
  eventsInWindow: number;
  perSessionEvents: number;
  perSessionActions: number;
  frontendCallsInWindow: Record<string, number>;
  perHour: { historyEvents: number; billableActions: number; frontendCalls: number; workerFrontendCalls: number };
}

/** Frontend operations a worker makes for itself, not for any one tenant. */
const PER_WORKER_OPERATIONS = new Set(['PollActivityTaskQueue', 'PollWorkflowTaskQueue', 'PollNexusTaskQueue', 'ListWorkers', 'RecordWorkerHeartbeat', 'DescribeNamespace', 'GetSystemInfo']);

export async function runIdleCost(ctx: Ctx): Promise<IdleCost> {
  const window = ctx.opts.idleSeconds;
  await sleep(3_000);
  const a0 = await readActions(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace);
  // The bench's own history reads stay outside the frontend window.
  const h0 = await historyCount(ctx.env.client, MAIN_TENANT);
  const f0 = await readFrontendCalls(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace);
  await sleep(window * 1000);
  const a1 = await readActions(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace);
  const f1 = await readFrontendCalls(ctx.env.temporal.metricsUrl, ctx.env.temporal.namespace);
  const h1 = await historyCount(ctx.env.client, MAIN_TENANT);
  const actions = diffCounts(a1, a0);
  const windowActions = Object.values(actions).reduce((a, b) => a + b, 0);
  const calls = diffCounts(f1, f0);
  const tenantCalls = Object.entries(calls).reduce((sum, [op, n]) => (PER_WORKER_OPERATIONS.has(op) ? sum : sum + n), 0);
  const workerCalls = Object.entries(calls).reduce((sum, [op, n]) => (PER_WORKER_OPERATIONS.has(op) ? sum + n : sum), 0);
  ctx.log(`  idle ${window} s: ${windowActions} actions ${JSON.stringify(actions)}, ${h1.events - h0.events} history events, frontend calls ${JSON.stringify(calls)}`);

  // One session boundary, measured on a tenant with 10-second sessions (tiny table in its own database).
  const url = await ctx.env.source.createDatabase('idle_short');
  await ctx.env.source.sql('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g', 'idle_short');
  const id = 'idle-short';
  ctx.tenants.set({ id, source: { kind: 'postgres', url }, mirror: { kind: 'postgres', url: ctx.mirrorUrl, schema: 'idle_short' }, pollInterval: '1s', retention: '80s' });
  await startTenant(ctx.env.client, id, ctx.worker.taskQueue);
  await waitPopulated(ctx.mirrorUrl, 'idle_short', ['t'], 120_000);
  await sleep(2_000);
  const s0 = await historyCount(ctx.env.client, id);
  const sessionWindow = ctx.opts.quick ? 12 : 61;
  await sleep(sessionWindow * 1000);
  const s1 = await historyCount(ctx.env.client, id);
  await terminateTenant(ctx.env.client, id);
  ctx.tenants.delete(id);
  const sessions = Math.max(1, (s1.byType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED ?? 0) - (s0.byType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED ?? 0));
  const perSessionEvents = (s1.events - s0.events) / sessions;
  const perSessionActions = (s1.billableInHistory - s0.billableInHistory) / sessions;
  ctx.log(`  ${sessions} session boundaries: ${perSessionEvents.toFixed(1)} events, ${perSessionActions.toFixed(1)} actions each`);

  const scale = 3600 / window;
  return {
    windowSeconds: window,
    actionsInWindow: actions,
    eventsInWindow: h1.events - h0.events,
    frontendCallsInWindow: calls,
    perSessionEvents,
    perSessionActions,
    perHour: {
      historyEvents: (h1.events - h0.events) * scale + perSessionEvents,
      billableActions: windowActions * scale + perSessionActions,
      frontendCalls: tenantCalls * scale,
      workerFrontendCalls: workerCalls * scale,
    },
  };
}
