/** The embedded Temporal of `tenant-mirror worker` and `demo` when no cluster is configured: persistent SQLite under .data/, UI on 8233. */
import { join } from 'node:path';
import { EMBEDDED_PORT, EMBEDDED_UI_PORT, type TemporalTarget } from '../../src/config/temporal';
import { PROJECT_ROOT } from '../paths';
import { startDevServer, type DevServer } from './dev-server';

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
