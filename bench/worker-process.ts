/**
 * The worker in its own process, so the benchmark can read its memory (/proc/<pid>/status) and CPU time
 * (/proc/<pid>/stat) apart from everything else. Configuration comes from the environment; the parent stops it
 * with SIGTERM.
 */
import { createWorker, defaultDeps } from '../src/worker';

async function main(): Promise<void> {
  const env = (name: string): string => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  const { worker, connection } = await createWorker({
    address: env('BENCH_TEMPORAL_ADDRESS'),
    namespace: env('BENCH_TEMPORAL_NAMESPACE'),
    taskQueue: env('BENCH_TASK_QUEUE'),
    workflowBundle: { codePath: env('BENCH_WORKFLOW_BUNDLE') },
    deps: defaultDeps(env('BENCH_TENANTS_FILE')),
  });
  const stop = (): void => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const running = worker.run();
  process.stdout.write('worker ready\n');
  await running;
  await connection.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`worker failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
