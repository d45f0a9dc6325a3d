/**
 * The `tenant-mirror` command line (commander): run the worker, start tenants, look at them, pause, resume,
 * force a wipe, check a tenant before its start, verify its mirror against its source, or run the demo.
 */
import { Command } from 'commander';
import { configPath, findTenant, loadConfigFile, tableFilter } from '../config/load';
import { untrackTenant } from '../untrack';
import { FailureType, MirrorError } from '../core/errors';
import { connectClient, forceWipe, pauseTenant, resumeTenant, startTenant } from '../client';
import { tenantReport, type TenantReport } from '../status';
import { temporalTarget } from '../config/temporal';
import { createWorker } from '../worker';
import { logger } from '../logging';
import { printStatus } from './status-format';
import { openMirror, openSource } from '../adapters';
import type { TenantConfig } from '../config/schema';
import type { ChangeSource, Mirror } from '../core/types';
import { checkTenant } from '../check/check';
import { verifyTenant, type TableVerdict } from '../verify/verify';
import { checkExitCode, formatCheck } from './check-format';
import { formatVerdict, formatVerifySummary, verifyExitCode } from './verify-format';

const program = new Command('tenant-mirror')
  .description('Keeps a live mirror of each tenant database in a partner database, orchestrated by Temporal.')
  .showHelpAfterError();

program
  .command('worker')
  .description('run the worker (starts the embedded Temporal dev server unless TEMPORAL_ADDRESS is set)')
  .action(async () => {
    const target = temporalTarget();
    // The embedded dev server is a development convenience (dev/), loaded only when no cluster is configured.
    const server = target.embedded ? await (await import('../../dev/temporal/embedded')).startEmbeddedTemporalIfNeeded(target) : null;
    if (server) logger.info({ address: server.address, ui: server.uiUrl }, 'embedded Temporal dev server started');
    loadConfigFile(); // fail fast on a broken tenants file
    const { worker, connection } = await createWorker({ address: target.address, namespace: target.namespace });
    logger.info({ taskQueue: 'tenant-mirror', config: configPath() }, 'worker running (Ctrl-C to stop)');
    await worker.run();
    await connection.close();
    await server?.stop();
  });

program
  .command('start')
  .description('start the mirror workflow of a tenant, or of every configured tenant')
  .argument('[tenant]', 'tenant id')
  .option('--all', 'every tenant in the configuration')
  .action(async (tenant: string | undefined, opts: { all?: boolean }) => {
    const tenants = loadConfigFile();
    const ids = opts.all ? tenants.map((t) => t.id) : tenant ? [findTenant(tenants, tenant).id] : [];
    if (!ids.length) throw new MirrorError(FailureType.BadConfig, 'name a tenant or pass --all');
    await withClient(async (client) => {
      for (const id of ids) console.log(`${id}: ${await startTenant(client, id)}`);
    });
  });

program
  .command('status')
  .description("show tenants' mirror state and per-table LSN, rows and last sync")
  .argument('[tenant]', 'tenant id (default: every configured tenant)')
  .option('--json', 'machine-readable output')
  .action(async (tenant: string | undefined, opts: { json?: boolean }) => {
    const tenants = loadConfigFile();
    const ids = tenant ? [tenant] : tenants.map((t) => t.id);
    await withClient(async (client) => {
      const rows: TenantReport[] = [];
      for (const id of ids) rows.push(await tenantReport(client, id, tenants.find((t) => t.id === id)));
      if (opts.json) console.log(JSON.stringify(rows.map(toJson), null, 2));
      else printStatus(rows);
    });
  });

program
  .command('list')
  .description('list configured tenants and their workflow state')
  .action(async () => {
    const tenants = loadConfigFile();
    await withClient(async (client) => {
      for (const t of tenants) {
        const { state } = await tenantReport(client, t.id);
        console.log(`${t.id.padEnd(24)} ${state.padEnd(14)} ${t.source.kind} → ${t.mirror.kind} (schema ${t.mirror.schema})`);
      }
    });
  });

program
  .command('wipe')
  .description('force a wipe and repopulation of a tenant (all tables, or the named ones)')
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .action(async (tenant: string, opts: { table?: string[] }) => {
    await withClient(async (client) => {
      const ack = await forceWipe(client, tenant, opts.table);
      console.log(`wipe accepted for ${tenant}: ${ack.tables === 'all' ? 'all tables' : ack.tables.join(', ')} (was ${ack.state})`);
    });
  });

program
  .command('pause')
  .description('pause a tenant (it holds no database connections while paused)')
  .argument('<tenant>', 'tenant id')
  .option('--reason <text>', 'shown in status')
  .action(async (tenant: string, opts: { reason?: string }) => {
    await withClient(async (client) => {
      await pauseTenant(client, tenant, opts.reason);
      console.log(`pause sent to ${tenant}`);
    });
  });

program
  .command('resume')
  .description('resume a paused or blocked tenant')
  .argument('<tenant>', 'tenant id')
  .action(async (tenant: string) => {
    await withClient(async (client) => {
      await resumeTenant(client, tenant);
      console.log(`resume sent to ${tenant}`);
    });
  });

program
  .command('untrack')
  .description("remove change tracking (triggers, functions, side tables) from the tenant's source tables")
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .action(async (tenant: string, opts: { table?: string[] }) => {
    const config = findTenant(loadConfigFile(), tenant);
    await withClient(async (client) => {
      const { state, running } = await tenantReport(client, tenant);
      const excluded = opts.table?.length ? opts.table.every((t) => !tableFilter(config.tables)(t)) : false;
      if (running && state !== 'paused' && !excluded) {
        throw new MirrorError(
          FailureType.BadConfig,
          `tenant ${tenant} is ${state}: it would install tracking again at once. Pause it first (tenant-mirror pause ${tenant}), or exclude the tables in the configuration`,
        );
      }
    });
    const removed = await untrackTenant(config, opts.table);
    console.log(removed.length ? `tracking removed from ${removed.join(', ')}` : 'nothing of tenant-mirror was tracking those tables');
  });

program
  .command('check')
  .description('test, without changing anything, what the tenant needs: connections, rights, the mirror schema, and which tables will be mirrored, refreshed or skipped')
  .argument('<tenant>', 'tenant id')
  .option('--json', 'machine-readable output')
  .action(async (tenant: string, opts: { json?: boolean }) => {
    const config = findTenant(loadConfigFile(), tenant);
    await withSides(config, async (sides) => {
      const report = await checkTenant(config, sides);
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatCheck(report));
      process.exitCode = checkExitCode(report);
    });
  });

program
  .command('verify')
  .description("compare the tenant's mirror with its source, table by table, without copying the tables; exit 0 when every table is equal, 1 when one differs, 2 on an error")
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .option('--json', 'machine-readable output')
  .action(async (tenant: string, opts: { table?: string[]; json?: boolean }) => {
    const config = findTenant(loadConfigFile(), tenant);
    await withSides(config, async (sides) => {
      // Printed as each table is done: a large tenant takes a while.
      const onTable = opts.json ? undefined : (v: TableVerdict): void => console.log(formatVerdict(v));
      const report = await verifyTenant(config, sides, { ...(opts.table ? { tables: opts.table } : {}), ...(onTable ? { onTable } : {}) });
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatVerifySummary(report));
      process.exitCode = verifyExitCode(report);
    });
  });

program
  .command('demo')
  .description('everything embedded: Temporal, two PostgreSQL servers, a CRM-like source, a worker, live changes')
  .option('--rows <n>', 'approximate source rows', '100000')
  .action(async (opts: { rows: string }) => {
    const { runDemo } = await import('../../dev/demo/run');
    await runDemo({ rows: Number(opts.rows) });
  });

/**
 * Opens both sides of a tenant for a command that reads them directly (check, verify), and closes them. Any error
 * (a side that cannot be reached, bad configuration) is exit status 2.
 */
async function withSides(tenant: TenantConfig, body: (sides: { source: ChangeSource; mirror: Mirror }) => Promise<void>): Promise<void> {
  const source = openSource(tenant);
  const mirror = openMirror(tenant);
  try {
    await body({ source, mirror });
  } catch (err) {
    console.error(`tenant-mirror: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  } finally {
    await Promise.allSettled([source.close(), mirror.close()]);
  }
}

async function withClient(body: (client: import('@temporalio/client').Client) => Promise<void>): Promise<void> {
  const target = temporalTarget();
  const { client, close } = await connectClient(target.address, target.namespace);
  try {
    await body(client);
  } finally {
    await close();
  }
}

function toJson(row: TenantReport) {
  return {
    tenantId: row.tenantId,
    state: row.state,
    reason: row.reason,
    error: row.activityError,
    notices: row.notices ?? [],
    tables: row.tables.map((t) => ({
      name: t.name,
      state: t.state,
      mode: t.mode ?? 'tracked',
      lsn: t.lsn,
      rows: t.rows,
      lastSyncAt: t.lastSyncAt,
      error: t.error,
      notes: t.notes ?? [],
      failure: t.failure ?? null,
    })),
  };
}

program.parseAsync(process.argv).catch((err: unknown) => {
  // One clear line for the person at the terminal; no stack for expected failures.
  const message = err instanceof Error ? err.message : String(err);
  console.error(`tenant-mirror: ${message}`);
  process.exitCode = err instanceof MirrorError && err.type === FailureType.BadConfig ? 2 : 1;
});
