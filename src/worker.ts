/**
 * The worker: runs the tenant workflows and their activities on the `tenant-mirror` task queue, and, beside them,
 * the fleet's reaper (src/fleet/reaper.ts), which moves a dead worker's activities to the living at once.
 *
 * Stopping (SIGTERM: a deploy) drains: the worker takes no new tasks, every session and population stops at its
 * next safe point (a committed batch or chunk, never half a one) and fails its attempt as `WorkerLost`, which the
 * server retries at once on whichever worker polls; then the process exits.
 */
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { TASK_QUEUE } from '../contract';
import { openMirror, openSource } from './adapters';
import { cachedConfigLoader, findTenant } from './config/load';
import { workerIdentity, type WorkerIdentity } from './fleet/identity';
import { Reaper } from './fleet/reaper';
import { logger } from './logging';
import { MirrorMetrics } from './metrics';

/**
 * Node flags for a worker process. A young generation capped at 2 MB per semi-space keeps a worker's resident
 * memory ~45 MB lower (the start-up transpile and the SDK's allocations otherwise grow it to its default
 * 16 MB); rows stream as Buffers outside the V8 heap, so copying does not pay for it (see bench/PERFORMANCE.md).
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=2'];

/** The workflow type the reaper looks for (the function's name, as the SDK registers it). */
const WORKFLOW_TYPE = 'tenantMirrorWorkflow';

export interface WorkerOptions {
  address: string;
  namespace: string;
  /** A prebuilt workflow bundle (tests build it once per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  deps?: Partial<ActivityDeps>;
  taskQueue?: string;
  maxConcurrentActivities?: number;
  identity?: WorkerIdentity;
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

export interface TenantWorker {
  worker: Worker;
  connection: NativeConnection;
  identity: WorkerIdentity;
  /** The metrics its activities record into (deps.metrics, or a new registry). */
  metrics: MirrorMetrics;
  /** Aborted when the worker starts draining: activities stop at their next safe point. */
  draining: AbortSignal;
  /** Starts draining (idempotent); `run()` resolves once every activity has ended. */
  shutdown(): void;
  /** Runs the worker and the reaper until shutdown. */
  run(): Promise<void>;
}

export async function createWorker(opts: WorkerOptions): Promise<TenantWorker> {
  const identity = opts.identity ?? workerIdentity();
  const connection = await NativeConnection.connect({ address: opts.address });
  const drain = new AbortController();
  const taskQueue = opts.taskQueue ?? TASK_QUEUE;
  const deps: ActivityDeps = { ...defaultDeps(), ...opts.deps, identity: identity.name, draining: drain.signal };
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue,
    identity: identity.name,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: join(__dirname, '..', 'workflows', 'index.ts') }),
    activities: createActivities(deps),
    // Sync sessions are long-running: each tenant holds one slot while mirroring.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 200,
    // A heartbeat requested at once (a session that saw a cancel request) is sent within a second.
    maxHeartbeatThrottleInterval: '1 second',
    defaultHeartbeatThrottleInterval: '1 second',
    // Drained activities end at their next batch; the grace is for one batch to commit or roll back.
    shutdownGraceTime: '10 seconds',
  });
  const shutdown = (): void => {
    if (drain.signal.aborted) return;
    drain.abort();
    if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  return {
    worker,
    connection,
    identity,
    metrics: deps.metrics,
    draining: drain.signal,
    shutdown,
    async run() {
      const clientConnection = await Connection.connect({ address: opts.address });
      const reaper = new Reaper({
        client: new Client({ connection: clientConnection, namespace: opts.namespace }),
        namespace: opts.namespace,
        taskQueue,
        identity,
        workflowType: WORKFLOW_TYPE,
        logger: deps.logger,
      });
      const running = worker.run();
      reaper.start();
      try {
        await running;
      } finally {
        await reaper.stop();
        await clientConnection.close();
      }
    },
  };
}

/** Runs a worker until SIGTERM or SIGINT, then drains it; closes its connection. */
export async function runWorker(w: TenantWorker): Promise<void> {
  const onSignal = (): void => w.shutdown();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await w.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await w.connection.close();
  }
}
