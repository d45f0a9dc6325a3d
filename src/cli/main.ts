/**
 * The `tenant-mirror` command line (commander): run the worker, start tenants, look at them, pause, resume,
 * force a wipe, or run the self-contained demo.
 */
import { Command } from 'commander';
import { configPath, findTenant, loadConfigFile, tableFilter } from '../config/load';
import { untrackTenant } from '../untrack';
import { FailureType, MirrorError } from '../core/errors';
import { connectClient, forceWipe, pauseTables, pauseTenant, resumeTables, resumeTenant, startTenant } from '../client';
import { tenantReport, type TenantReport } from '../status';
import { temporalTarget } from '../config/temporal';
import { createWorker, runWorker } from '../worker';
import { logger } from '../logging';
import { MirrorMetrics } from '../metrics';
import { startTelemetry } from '../telemetry';
import { formatList, listEntry, printStatus, statusJson } from './status-format';
import { watchStatus } from './watch';

const LIST_CONCURRENCY = 8;

const program = new Command('tenant-mirror')
  .description('Keeps a live mirror of each tenant database in a partner database, orchestrated by Temporal.')
  .showHelpAfterError();

program
  .command('worker')
  .description('run the worker (starts the embedded Temporal dev server unless TEMPORAL_ADDRESS is set); metrics on TENANT_MIRROR_METRICS')
  .action(async () => {
    // Before any Temporal connection: the SDK's logs and metrics are set up when its runtime is created.
    const metrics = new MirrorMetrics();
    const telemetry = await startTelemetry(metrics);
    const target = temporalTarget();
    // The embedded dev server is a development convenience (dev/), loaded only when no cluster is configured.
    const server = target.embedded ? await (await import('../../dev/temporal/embedded')).startEmbeddedTemporalIfNeeded(target) : null;
    if (server) logger.info({ address: server.address, ui: server.uiUrl }, 'embedded Temporal dev server started');
    loadConfigFile(); // fail fast on a broken tenants file
    const worker = await createWorker({ address: target.address, namespace: target.namespace, deps: { metrics } });
    logger.info(
      { taskQueue: 'tenant-mirror', config: configPath(), identity: worker.identity.name, metrics: telemetry.metricsUrl },
      'worker running (Ctrl-C to stop)',
    );
    await runWorker(worker);
    await telemetry.close();
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
  .option('--watch', "redraw one tenant's status: a progress bar per populating table, lag and last cycle per mirroring one")
  .option('--interval <seconds>', 'seconds between two --watch frames', '2')
  .action(async (tenant: string | undefined, opts: { json?: boolean; watch?: boolean; interval: string }) => {
    const tenants = loadConfigFile();
    const ids = tenant ? [tenant] : tenants.map((t) => t.id);
    if (opts.watch) {
      const seconds = Number(opts.interval);
      if (!tenant || !(seconds > 0)) throw new Error('status --watch needs one tenant and an --interval of more than 0 seconds');
      await withClient((client) => watchStatus(client, tenant, tenants.find((t) => t.id === tenant), seconds * 1000));
      return;
    }
    await withClient(async (client) => {
      const rows: TenantReport[] = [];
      for (const id of ids) rows.push(await tenantReport(client, id, tenants.find((t) => t.id === id)));
      if (opts.json) console.log(JSON.stringify(rows.map(statusJson), null, 2));
      else printStatus(rows);
    });
  });

program
  .command('list')
  .description('every configured tenant: state (stale when nothing syncs), tables mirroring/populating/failed, worst lag, last error')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    const tenants = loadConfigFile();
    await withClient(async (client) => {
      const entries: ReturnType<typeof listEntry>[] = [];
      // A few tenants at a time: each report reads the workflow, the mirror and the source.
      for (let i = 0; i < tenants.length; i += LIST_CONCURRENCY) {
        const batch = tenants.slice(i, i + LIST_CONCURRENCY);
        entries.push(...(await Promise.all(batch.map(async (t) => listEntry(await tenantReport(client, t.id, t), t)))));
      }
      console.log(opts.json ? JSON.stringify(entries, null, 2) : formatList(entries));
    });
  });

program
  .command('wipe')
  .description('force a wipe and repopulation of a tenant (all tables, or the named ones)')
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .action((tenant: string, opts: { table?: string[] }) => wipe('wipe', tenant, opts.table));

/** `wipe` and `resync` are one request, the forceWipe update: named for the whole tenant and for single tables. */
async function wipe(verb: string, tenant: string, tables: string[] | undefined): Promise<void> {
  await withClient(async (client) => {
    const ack = await forceWipe(client, tenant, tables);
    console.log(`${verb} accepted for ${tenant}: ${ack.tables === 'all' ? 'all tables' : ack.tables.join(', ')} (was ${ack.state})`);
  });
}

program
  .command('pause')
  .description('pause a tenant (it holds no database connections while paused), or only the named tables (the others go on)')
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .option('--reason <text>', 'shown in status')
  .action(async (tenant: string, opts: { table?: string[]; reason?: string }) => {
    await withClient(async (client) => {
      if (opts.table?.length) {
        const ack = await pauseTables(client, tenant, opts.table, opts.reason);
        console.log(`pause accepted for ${tenant}: ${ack.tables.join(', ')} (the other tables go on mirroring)`);
        return;
      }
      await pauseTenant(client, tenant, opts.reason);
      console.log(`pause sent to ${tenant}`);
    });
  });

program
  .command('resume')
  .description('resume a paused or blocked tenant, or only the named paused tables (they catch up from their LSN)')
  .argument('<tenant>', 'tenant id')
  .option('--table <name...>', 'only these tables')
  .action(async (tenant: string, opts: { table?: string[] }) => {
    await withClient(async (client) => {
      if (opts.table?.length) {
        const ack = await resumeTables(client, tenant, opts.table);
        console.log(`resume accepted for ${tenant}: ${ack.tables.join(', ')}`);
        return;
      }
      await resumeTenant(client, tenant);
      console.log(`resume sent to ${tenant}`);
    });
  });

program
  .command('resync')
  .description('wipe and repopulate the named tables alone (the forceWipe update with tables); a paused table is resumed')
  .argument('<tenant>', 'tenant id')
  .requiredOption('--table <name...>', 'the tables to resync')
  .action((tenant: string, opts: { table: string[] }) => wipe('resync', tenant, opts.table));

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
  .command('demo')
  .description('everything embedded: Temporal, two PostgreSQL servers, a CRM-like source, a worker, live changes')
  .option('--rows <n>', 'approximate source rows', '100000')
  .action(async (opts: { rows: string }) => {
    const { runDemo } = await import('../../dev/demo/run');
    await runDemo({ rows: Number(opts.rows) });
  });

async function withClient(body: (client: import('@temporalio/client').Client) => Promise<void>): Promise<void> {
  const target = temporalTarget();
  const { client, close } = await connectClient(target.address, target.namespace);
  try {
    await body(client);
  } finally {
    await close();
  }
}

program.parseAsync(process.argv).catch((err: unknown) => {
  // One clear line for the person at the terminal; no stack for expected failures.
  console.error(`tenant-mirror: ${messageChain(err)}`);
  process.exitCode = err instanceof MirrorError && err.type === FailureType.BadConfig ? 2 : 1;
});

/** A refused update says only "Workflow Update failed"; the workflow's reason is in its cause. */
function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && parts.length < 5; e = e instanceof Error ? e.cause : undefined) {
    parts.push(e instanceof Error ? e.message : String(e));
  }
  return parts.join(': ');
}
