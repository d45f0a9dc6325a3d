/**
 * Bootstrapping: check both sides answer, make sure tracking and mirror tables exist for every mirrored table,
 * and decide per table whether it continues from its LSN or must be (re)populated. Returns a plan: metadata only.
 */
import { tableFilter } from '../src/config/load';
import type { TableSchema } from '../src/core/types';
import type { TablePlan, TenantPlan } from '../contract';
import { decideTable } from './decide';
import { withSides, type ActivityDeps } from './deps';
import { withFailures } from './failure';

export async function prepareTenant(deps: ActivityDeps, tenantId: string): Promise<TenantPlan> {
  return withFailures({ tenant: tenantId, operation: 'prepare' }, () =>
    withSides(deps, tenantId, async ({ tenant, source, mirror }) => {
      const log = deps.logger.child({ tenantId, activity: 'prepareTenant' });
      await Promise.all([source.ping(), mirror.ping()]);
      await mirror.ensureState();
      await source.cleanup(tenant.retention);

      const included = tableFilter(tenant.tables);
      const everything = await source.listTables(() => true);
      const listed = {
        tables: everything.tables.filter((t) => included(t.name)),
        skipped: everything.skipped.filter((s) => included(s.name)),
      };
      const stateBefore = await mirror.readState();

      // A mirrored table whose source table is gone is dropped; one merely excluded by configuration is left alone.
      const existing = new Set([...everything.tables, ...everything.skipped].map((t) => t.name));
      const dropped = stateBefore.filter((s) => !existing.has(s.table)).map((s) => s.table);
      for (const name of dropped) {
        log.info({ table: name }, 'source table is gone: dropping it from the mirror');
        await mirror.dropTable(name);
      }

      for (const table of listed.tables) {
        if (await source.enableTracking(table, tenant.retention)) log.info({ table: table.name }, 'change tracking enabled');
      }

      const schemaOutcomes = new Map<string, TablePlan | null>();
      for (const table of listed.tables) schemaOutcomes.set(table.name, await applySchema(table));

      const state = new Map((await mirror.readState()).map((s) => [s.table, s]));
      const snapshot = await source.snapshot();
      const plans: TablePlan[] = [];
      let sourceRestored: string | null = null;
      try {
        for (const table of listed.tables) {
          const fromSchema = schemaOutcomes.get(table.name);
          if (fromSchema) {
            plans.push(fromSchema);
            continue;
          }
          const verdict = decideTable({
            state: state.get(table.name),
            sourceVersion: snapshot.version,
            minValidVersion: await snapshot.minValidVersion(table),
            fingerprint: await snapshot.tableFingerprint(table),
            retentionMs: tenant.retention,
            now: Date.now(),
          });
          if (verdict.action === 'mirror') {
            plans.push({ name: table.name, action: 'mirror' });
          } else {
            if (verdict.reason === 'source restored') sourceRestored ??= verdict.detail;
            log.warn({ table: table.name, reason: verdict.reason, detail: verdict.detail }, 'table needs repopulating');
            plans.push({ name: table.name, action: 'populate', reason: verdict.reason, detail: verdict.detail });
          }
        }
      } finally {
        await snapshot.close();
      }

      const schemas = new Map(listed.tables.map((t) => [t.name, t]));
      for (const plan of plans) {
        const schema = schemas.get(plan.name);
        if (plan.action === 'populate' && schema) plan.estimatedRows = await source.estimateRows(schema);
      }

      return {
        policy: {
          pollIntervalMs: tenant.pollInterval,
          retentionMs: tenant.retention,
          onSourceRestore: tenant.onSourceRestore,
        },
        tables: plans,
        skipped: listed.skipped,
        dropped,
        sourceRestored,
      };

      async function applySchema(table: TableSchema): Promise<TablePlan | null> {
        const result = await mirror.applySchema(table);
        switch (result.outcome) {
          case 'created':
            return { name: table.name, action: 'populate', reason: 'new table', detail: 'created from the received schema' };
          case 'incompatible':
            log.warn({ table: table.name, reason: result.reason }, 'incompatible schema change: table replaced');
            return { name: table.name, action: 'populate', reason: 'schema replaced', detail: result.reason };
          case 'altered':
            log.info({ table: table.name, changes: result.changes }, 'schema altered in place');
            return result.needsBackfill
              ? { name: table.name, action: 'populate', reason: 'column added', detail: result.changes.join('; ') }
              : null;
          case 'unchanged':
            return null;
        }
      }
    }),
  );
}
