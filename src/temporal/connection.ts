/**
 * Which Temporal to talk to. TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE select an existing cluster; without them the
 * CLI uses the embedded dev server (`worker` and `demo` start it: persistent SQLite under .data/, UI on 8233).
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from './binaries';
import { startDevServer, type DevServer } from './dev-server';

export const EMBEDDED_PORT = 7233;
export const EMBEDDED_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  embedded: boolean;
}

export function temporalTarget(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  if (env.TEMPORAL_ADDRESS) {
    return { address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE || 'default', embedded: false };
  }
  return { address: `127.0.0.1:${EMBEDDED_PORT}`, namespace: env.TEMPORAL_NAMESPACE || 'default', embedded: true };
}

/** Starts the embedded dev server when no cluster is configured; returns null when one is. */
export async function startEmbeddedTemporalIfNeeded(target: TemporalTarget, onLog?: (line: string) => void): Promise<DevServer | null> {
  if (!target.embedded) return null;
  return startDevServer({
    port: EMBEDDED_PORT,
    uiPort: EMBEDDED_UI_PORT,
    namespace: target.namespace,
    dbFile: join(PROJECT_ROOT, '.data', 'temporal', 'dev.sqlite'),
    onLog,
  });
}
