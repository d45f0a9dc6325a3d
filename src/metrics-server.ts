/**
 * The worker's one metrics endpoint, `http://<TENANT_MIRROR_METRICS>/metrics` (default 127.0.0.1:9464): our
 * metrics (src/metrics.ts) followed by the Temporal SDK's. The SDK exports its own in Prometheus format only from a
 * server of its own, so it is bound to a loopback port nobody else scrapes and read on each scrape (it answers in a
 * few milliseconds); if it cannot be read, our metrics are still served, with a comment saying why.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FailureType, MirrorError } from './core/errors';
import type { MirrorMetrics } from './metrics';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';
/** How long a scrape waits for the SDK's exporter. */
const SDK_SCRAPE_TIMEOUT_MS = 2_000;

/** TENANT_MIRROR_METRICS: `host:port` (IPv6 as `[::1]:9464`), or `off` for no endpoint. */
export function metricsAddress(env: NodeJS.ProcessEnv = process.env): { host: string; port: number } | null {
  const text = (env.TENANT_MIRROR_METRICS ?? DEFAULT_METRICS_ADDRESS).trim();
  if (text === 'off' || text === 'none' || text === '') return null;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new MirrorError(FailureType.BadConfig, `TENANT_MIRROR_METRICS: not host:port or off: ${JSON.stringify(text)} (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464)`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export interface MetricsEndpoint {
  /** e.g. http://127.0.0.1:9464/metrics (the real port when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

export async function serveMetrics(opts: {
  host: string;
  port: number;
  metrics: MirrorMetrics;
  /** The SDK exporter's URL, or null when it is not running. */
  sdkMetricsUrl: string | null;
}): Promise<MetricsEndpoint> {
  const server = createServer((req, res) => void answer(req, res, opts));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, opts: { metrics: MirrorMetrics; sdkMetricsUrl: string | null }): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' || path !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('tenant-mirror serves GET /metrics\n');
    return;
  }
  const [ours, sdk] = await Promise.all([opts.metrics.render(), opts.sdkMetricsUrl === null ? '' : sdkMetrics(opts.sdkMetricsUrl)]);
  res.writeHead(200, { 'content-type': opts.metrics.contentType }).end(ours + sdk);
}

async function sdkMetrics(url: string): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SDK_SCRAPE_TIMEOUT_MS) });
    if (!response.ok) return `# Temporal SDK metrics unavailable: HTTP ${response.status}\n`;
    const text = await response.text();
    return text.endsWith('\n') || text === '' ? text : `${text}\n`;
  } catch (err) {
    return `# Temporal SDK metrics unavailable: ${(err instanceof Error ? err.message : String(err)).replace(/\n/g, ' ')}\n`;
  }
}
