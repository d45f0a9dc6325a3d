/** Wiping: drop the named mirror tables (or all of them) with their state, so bootstrap repopulates them. */
import type { WipeInput } from '../contract';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';

export async function wipeTables(deps: ActivityDeps, tenantId: string, input: WipeInput): Promise<{ wiped: string[] | 'all' }> {
  return withFailures({ tenant: tenantId, operation: 'wipe', side: 'mirror' }, () =>
    withSides(deps, tenantId, async ({ mirror }) => {
      deps.logger.warn({ tenantId, tables: input.tables, reason: input.reason }, 'wiping mirror tables');
      await mirror.ensureState();
      if (input.tables === 'all') await mirror.wipeAll(input.reason);
      else for (const table of input.tables) await mirror.dropTable(table, input.reason);
      deps.metrics.tablesTo(tenantId, 'pending', input.tables === 'all' ? undefined : input.tables);
      return { wiped: input.tables };
    }),
    { metrics: deps.metrics },
  );
}
