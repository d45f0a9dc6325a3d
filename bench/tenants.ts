/**
 * Driving tenant-mirror as an operator would: a tenants file, the worker in a child process, workflows started
 * with the client. Also the readings taken from outside: the worker's /proc figures and a workflow's history.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Client } from '@temporalio/client';
import type { TenantConfigInput } from '../src/config/schema';
import { pauseSignal, resumeSignal, workflowIdFor } from '../contract';
import { tenantMirrorWorkflow } from '../workflows/tenant-mirror';
import { BENCH_DIR, q, sleep, type BenchEnv } from './env';
import { spawnWorker } from '../dev/worker-spawn';

export class TenantsFile {
  readonly path: string;
  private readonly tenants = new Map<string, TenantConfigInput>();
  constructor(name: string) {
    this.path = join(BENCH_DIR, `${name}.yaml`);
    this.flush();
  }
  set(t: TenantConfigInput): void {
    this.tenants.set(t.id, t);
    this.flush();
  }
  delete(id: string): void {
    this.tenants.delete(id);
    this.flush();
  }
  private flush(): void {
    // The product refuses an empty tenants file; a placeholder keeps it valid between runs.
    const list = this.tenants.size
      ? [...this.tenants.values()]
      : [{ id: 'placeholder', source: { kind: 'postgres', url: 'postgres://x@127.0.0.1:1/x' }, mirror: { kind: 'postgres', url: 'postgres://x@127.0.0.1:1/x' } }];
    writeFileSync(this.path, stringify({ tenants: list }));
  }
}

export interface WorkerProcess {
  pid: number;
  taskQueue: string;
  stop(): Promise<void>;
}

export async function startWorkerProcess(env: BenchEnv, file: TenantsFile, taskQueue: string, logName: string, opts: { maxActivities?: number } = {}): Promise<WorkerProcess> {
  const worker = await spawnWorker({
    temporalAddress: env.temporal.address,
    namespace: env.temporal.namespace,
    taskQueue,
    workflowBundlePath: env.bundlePath,
    tenantsFile: file.path,
    logFile: join(BENCH_DIR, `${logName}.log`),
    logLevel: process.env.BENCH_WORKER_LOG_LEVEL ?? 'warn',
    ...(opts.maxActivities ? { maxActivities: opts.maxActivities } : {}),
  });
  return { pid: worker.pid, taskQueue, stop: () => worker.stop(10_000) };
}

export async function startTenant(client: Client, tenantId: string, taskQueue: string): Promise<void> {
  await client.workflow.start(tenantMirrorWorkflow, { workflowId: workflowIdFor(tenantId), taskQueue, args: [{ tenantId }] });
}

export async function terminateTenant(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).terminate('benchmark run done').catch(() => undefined);
}

export async function pauseTenant(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(pauseSignal, 'benchmark');
}

export async function resumeTenant(client: Client, tenantId: string): Promise<void> {
  await client.workflow.getHandle(workflowIdFor(tenantId)).signal(resumeSignal);
}

/**
 * Waits until the mirror's own state table records an LSN for every listed table (the product writes it in the
 * same transaction as the swap-in of a populated table), reading the mirror rather than querying the workflow.
 */
export async function waitPopulated(mirrorUrl: string, schema: string, tables: string[], timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const rows = await q<{ n: string }>(
        mirrorUrl,
        `SELECT count(*)::text AS n FROM "${schema}"._mirror_state WHERE lsn IS NOT NULL AND table_name = ANY($1)`,
        [tables],
      );
      if (Number(rows[0]?.n) === tables.length) return;
    } catch {
      // The schema does not exist yet.
    }
    if (Date.now() > deadline) throw new Error(`tables of ${schema} not populated within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

export interface HistoryCount {
  events: number;
  /** History events that are billable actions (see PERFORMANCE.md for the mapping). */
  billableInHistory: number;
  byType: Record<string, number>;
}

const BILLABLE_EVENTS = new Set([
  'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED',
  'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED',
  'EVENT_TYPE_TIMER_STARTED',
  'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
  'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED',
]);

/** Events over every run of the tenant's workflow (continue-as-new chains), by type. */
export async function historyCount(client: Client, tenantId: string): Promise<HistoryCount> {
  const byType: Record<string, number> = {};
  let events = 0;
  let billable = 0;
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(tenantId)}'` })) {
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    for (const e of history.events ?? []) {
      const type = eventTypeName(e.eventType);
      byType[type] = (byType[type] ?? 0) + 1;
      events++;
      if (BILLABLE_EVENTS.has(type)) billable++;
      // Retries are billable too, and leave no event of their own: the started event carries the attempt.
      const attempt = e.activityTaskStartedEventAttributes?.attempt ?? 1;
      if (type === 'EVENT_TYPE_ACTIVITY_TASK_STARTED' && attempt > 1) billable += attempt - 1;
    }
  }
  return { events, billableInHistory: billable, byType };
}

function eventTypeName(t: unknown): string {
  if (typeof t === 'string') return t;
  const names: Record<number, string> = {
    1: 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED', 2: 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED', 3: 'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
    4: 'EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT', 5: 'EVENT_TYPE_WORKFLOW_TASK_SCHEDULED', 6: 'EVENT_TYPE_WORKFLOW_TASK_STARTED',
    7: 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED', 8: 'EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT', 9: 'EVENT_TYPE_WORKFLOW_TASK_FAILED',
    10: 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED', 11: 'EVENT_TYPE_ACTIVITY_TASK_STARTED', 12: 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED',
    13: 'EVENT_TYPE_ACTIVITY_TASK_FAILED', 14: 'EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT', 15: 'EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED',
    16: 'EVENT_TYPE_ACTIVITY_TASK_CANCELED', 17: 'EVENT_TYPE_TIMER_STARTED', 18: 'EVENT_TYPE_TIMER_FIRED', 19: 'EVENT_TYPE_TIMER_CANCELED',
    26: 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED', 27: 'EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED',
    28: 'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW', 40: 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
    41: 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED', 42: 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED',
    43: 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED', 46: 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED',
  };
  return typeof t === 'number' ? names[t] ?? `EVENT_TYPE_${t}` : String(t);
}

export interface ProcStatus {
  rssBytes: number;
  hwmBytes: number;
}

export function procStatus(pid: number): ProcStatus {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

/** User + system CPU seconds the process has used so far. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/** Samples the worker's RSS every `ms` until stopped; returns the highest seen. */
export function sampleRss(pid: number, ms = 100): { stop(): number } {
  let max = 0;
  const timer = setInterval(() => {
    try {
      max = Math.max(max, procStatus(pid).rssBytes);
    } catch {
      // The process is gone.
    }
  }, ms);
  return {
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

export interface ActivitySpan {
  activity: string;
  /** From the workflow's start to the activity's scheduling. */
  scheduledAtMs: number;
  queuedMs: number;
  runMs: number;
}

function ms(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  if (!t) return NaN;
  return Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
}

/** The activities of the tenant's current run, with their queueing and running times (from history timestamps). */
export async function activityTimeline(client: Client, tenantId: string): Promise<ActivitySpan[]> {
  const history = await client.workflow.getHandle(workflowIdFor(tenantId)).fetchHistory();
  const events = history.events ?? [];
  const start = ms(events[0]?.eventTime);
  const spans = new Map<string, ActivitySpan & { scheduled: number; started: number }>();
  for (const e of events) {
    const id = String(e.eventId);
    const at = ms(e.eventTime);
    const sched = e.activityTaskScheduledEventAttributes;
    if (sched) spans.set(id, { activity: sched.activityType?.name ?? '?', scheduledAtMs: at - start, queuedMs: NaN, runMs: NaN, scheduled: at, started: NaN });
    const started = e.activityTaskStartedEventAttributes;
    const s = started ? spans.get(String(started.scheduledEventId)) : undefined;
    if (s) {
      s.started = at;
      s.queuedMs = at - s.scheduled;
    }
    const done = e.activityTaskCompletedEventAttributes;
    const d = done ? spans.get(String(done.scheduledEventId)) : undefined;
    if (d) d.runMs = at - d.started;
  }
  return [...spans.values()].map(({ activity, scheduledAtMs, queuedMs, runMs }) => ({ activity, scheduledAtMs, queuedMs, runMs }));
}
