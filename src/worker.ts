/**
 * The worker: runs the tenant workflows and their activities on the `tenant-mirror` task queue.
 */
import { join } from 'node:path';
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { TASK_QUEUE } from '../contract';
import { openMirror, openSource } from './adapters';
import { cachedConfigLoader, findTenant } from './config/load';
import { logger } from './logging';
import { MirrorMetrics } from './metrics';

/**
 * Node flags for a worker process. A young generation capped at 2 MB per semi-space keeps a worker's resident
 * memory ~45 MB lower (the start-up transpile and the SDK's allocations otherwise grow it to its default
 * 16 MB); rows stream as Buffers outside the V8 heap, so copying does not pay for it (see bench/PERFORMANCE.md).
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=2'];

export interface WorkerOptions {
  address: string;
  namespace: string;
  /** A prebuilt workflow bundle (tests build it once per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  deps?: Partial<ActivityDeps>;
  taskQueue?: string;
  maxConcurrentActivities?: number;
}

/** Real dependencies: the tenants file is re-read on every activity, so a fixed configuration applies at once. */
export function defaultDeps(configPath?: string): ActivityDeps {
  const tenants = cachedConfigLoader(configPath);
  return {
    loadTenant: (tenantId) => findTenant(tenants(), tenantId),
    openSource,
    openMirror,
    logger,
    metrics: new MirrorMetrics(),
  };
}

/** The worker, its connection, and the metrics its activities record into (deps.metrics, or a new registry). */
export async function createWorker(opts: WorkerOptions): Promise<{ worker: Worker; connection: NativeConnection; metrics: MirrorMetrics }> {
  const connection = await NativeConnection.connect({ address: opts.address });
  const deps = { ...defaultDeps(), ...opts.deps };
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue ?? TASK_QUEUE,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: join(__dirname, '..', 'workflows', 'index.ts') }),
    activities: createActivities(deps),
    // Sync sessions are long-running: each tenant holds one slot while mirroring.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 200,
    // Heartbeats carry cancellations (pause, wipe, syncNow): send them within a second.
    maxHeartbeatThrottleInterval: '1 second',
    defaultHeartbeatThrottleInterval: '1 second',
    shutdownGraceTime: '10 seconds',
  });
  return { worker, connection, metrics: deps.metrics };
}
