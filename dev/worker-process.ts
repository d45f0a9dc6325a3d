/**
 * A worker in its own process, for the benchmark (its memory and CPU read from /proc apart from everything
 * else), the chaos suite and the fleet tests (killed with SIGKILL, drained with SIGTERM). Configuration comes
 * from the environment (see dev/worker-spawn.ts); prints "worker ready" once it polls.
 */
import { createWorker, defaultDeps, runWorker } from '../src/worker';
import { MirrorMetrics } from '../src/metrics';
import { startTelemetry } from '../src/telemetry';

async function main(): Promise<void> {
  const env = (name: string): string => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  // Several of these run on one host: metrics off unless TENANT_MIRROR_METRICS names a port.
  const metrics = new MirrorMetrics();
  const telemetry = await startTelemetry(metrics, { env: { TENANT_MIRROR_METRICS: 'off', ...process.env }, sdkLogLevel: 'ERROR' });
  const worker = await createWorker({
    address: env('WORKER_TEMPORAL_ADDRESS'),
    namespace: env('WORKER_TEMPORAL_NAMESPACE'),
    taskQueue: env('WORKER_TASK_QUEUE'),
    workflowBundle: { codePath: env('WORKER_WORKFLOW_BUNDLE') },
    deps: { ...defaultDeps(env('WORKER_TENANTS_FILE')), metrics },
    ...(process.env.WORKER_MAX_ACTIVITIES ? { maxConcurrentActivities: Number(process.env.WORKER_MAX_ACTIVITIES) } : {}),
  });
  const running = runWorker(worker);
  process.stdout.write('worker ready\n');
  await running;
  await telemetry.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`worker failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
