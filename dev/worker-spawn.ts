/**
 * Starts dev/worker-process.ts as a child in its own process group, so a test or benchmark can SIGKILL it (a
 * crash), SIGTERM it (a deploy) and be sure nothing of it outlives the run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { WORKER_NODE_FLAGS } from '../src/worker';
import { PROJECT_ROOT } from './paths';

export interface WorkerSpawnOptions {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  workflowBundlePath: string;
  tenantsFile: string;
  /** TENANT_MIRROR_WORKER_ID: a stable identity (reclaims its own sessions after a restart). */
  identity?: string;
  /** The worker's stderr (its JSON log) goes here. */
  logFile: string;
  logLevel?: string;
  /** Activity slots (a session holds one for its lifetime): a test uses it to place sessions on workers. */
  maxActivities?: number;
  env?: NodeJS.ProcessEnv;
}

export interface SpawnedWorker {
  pid: number;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | NodeJS.Signals | null>;
  /** SIGKILL to the process group: a crash. */
  kill(): Promise<void>;
  /** SIGTERM: a deploy's stop (the worker drains); SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export async function spawnWorker(opts: WorkerSpawnOptions): Promise<SpawnedWorker> {
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, [...WORKER_NODE_FLAGS, '--import', 'tsx', join(PROJECT_ROOT, 'dev', 'worker-process.ts')], {
    cwd: PROJECT_ROOT,
    detached: true,
    env: {
      ...process.env,
      ...opts.env,
      WORKER_TEMPORAL_ADDRESS: opts.temporalAddress,
      WORKER_TEMPORAL_NAMESPACE: opts.namespace,
      WORKER_TASK_QUEUE: opts.taskQueue,
      WORKER_WORKFLOW_BUNDLE: opts.workflowBundlePath,
      WORKER_TENANTS_FILE: opts.tenantsFile,
      LOG_LEVEL: opts.logLevel ?? 'warn',
      LOG_JSON: '1',
      ...(opts.identity ? { TENANT_MIRROR_WORKER_ID: opts.identity } : {}),
      ...(opts.maxActivities ? { WORKER_MAX_ACTIVITIES: String(opts.maxActivities) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.pipe(log);
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  void exited.then(() => log.end());
  await new Promise<void>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`worker process exited with ${String(code)} before it was ready (see ${opts.logFile})`)));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('worker ready')) resolve();
    });
  });
  const pid = child.pid!;
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  };
  return {
    pid,
    exited,
    async kill() {
      signalGroup('SIGKILL');
      await exited;
    },
    async stop(graceMs = 30_000) {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
