/**
 * Source and mirror PostgreSQL servers for an integration test file: two separate servers, so a test can stop
 * one. Each file gets its own pair under .data/test/<name>.
 */
import { join } from 'node:path';
import { EmbeddedPg } from '../../dev/embedded-postgres';

export interface PgPair {
  source: EmbeddedPg;
  mirror: EmbeddedPg;
  stop(): Promise<void>;
}

export async function startPgPair(name: string, settings?: Record<string, string>): Promise<PgPair> {
  const root = join(process.cwd(), '.data', 'test', name);
  const [source, mirror] = await Promise.all([
    EmbeddedPg.start({ dir: join(root, 'source'), settings }),
    EmbeddedPg.start({ dir: join(root, 'mirror') }),
  ]);
  return {
    source,
    mirror,
    async stop() {
      await Promise.all([source.stop(), mirror.stop()]);
    },
  };
}
