/**
 * The worker process's telemetry, set up once before any Temporal connection: the Temporal runtime logs through
 * our JSON logger (its native core's lines too), exports its metrics on a loopback port of its own, and our
 * endpoint (src/metrics-server.ts) serves both on TENANT_MIRROR_METRICS.
 */
import { createServer } from 'node:net';
import { makeTelemetryFilterString, Runtime, type RuntimeOptions } from '@temporalio/worker';
import type { LogLevel } from '@temporalio/common';
import { FailureType, MirrorError } from './core/errors';
import { logger, temporalLogger, type Logger } from './logging';
import type { MirrorMetrics } from './metrics';
import { WORKER_HEARTBEAT_MS } from './fleet/liveness';
import { metricsAddress, serveMetrics, type MetricsEndpoint } from './metrics-server';

export interface Telemetry {
  /** Where the metrics are served, or null (TENANT_MIRROR_METRICS=off). */
  metricsUrl: string | null;
  close(): Promise<void>;
}

export interface TelemetryOptions {
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Signals on which the SDK shuts its workers down itself (default none: runWorker drains on SIGTERM/SIGINT). */
  shutdownSignals?: NodeJS.Signals[];
  /** The least level of the SDK's own messages to log (default: every level our logger's level lets through). */
  sdkLogLevel?: LogLevel;
}

export async function startTelemetry(metrics: MirrorMetrics, opts: TelemetryOptions = {}): Promise<Telemetry> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? logger;
  const address = metricsAddress(env);
  const sdkPort = address ? await freeLoopbackPort() : null;
  const installed = installRuntime({ ...opts, env, sdkBindAddress: sdkPort === null ? null : `127.0.0.1:${sdkPort}`, log });
  let endpoint: MetricsEndpoint | null = null;
  if (address) {
    try {
      endpoint = await serveMetrics({ ...address, metrics, sdkMetricsUrl: installed && sdkPort !== null ? `http://127.0.0.1:${sdkPort}/metrics` : null });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new MirrorError(FailureType.BadConfig, `TENANT_MIRROR_METRICS: cannot serve metrics on ${address.host}:${address.port}: ${reason} (choose another host:port, or off)`);
    }
    log.info({ metrics: endpoint.url }, 'metrics served');
  }
  return { metricsUrl: endpoint?.url ?? null, close: async () => endpoint?.close() };
}

/**
 * Runtime.install may run once per process, before the first connection; a process that installed it already
 * (a test, the demo) keeps its own, and the SDK's metrics are then not served.
 */
function installRuntime(opts: TelemetryOptions & { env: NodeJS.ProcessEnv; sdkBindAddress: string | null; log: Logger }): boolean {
  const level = opts.sdkLogLevel ?? (opts.env.LOG_LEVEL === 'debug' || opts.env.LOG_LEVEL === 'trace' ? 'DEBUG' : 'WARN');
  const options: RuntimeOptions = {
    logger: temporalLogger(logger, opts.sdkLogLevel),
    // Worker heartbeats are the fleet's liveness signal (src/fleet/reaper.ts).
    workerHeartbeatInterval: WORKER_HEARTBEAT_MS,
    // runWorker (src/worker.ts) drains on SIGTERM/SIGINT itself.
    shutdownSignals: opts.shutdownSignals ?? [],
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: level, other: 'ERROR' }), forward: {} },
      ...(opts.sdkBindAddress ? { metrics: { prometheus: { bindAddress: opts.sdkBindAddress } } } : {}),
    },
  };
  try {
    Runtime.install(options);
    return true;
  } catch (err) {
    opts.log.info({ reason: err instanceof Error ? err.message : String(err) }, 'Temporal runtime already installed: its metrics are not served on our endpoint');
    return false;
  }
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
