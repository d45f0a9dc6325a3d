/**
 * `tenant-mirror demo`: everything embedded in one process. A Temporal dev server, two throwaway PostgreSQL
 * servers (a CRM source and a partner's mirror), a worker, and one tenant, `acme`: it shows the population with
 * a bar per table, then keeps making changes at the source and prints how far the mirror trails. Ctrl-C stops
 * everything it started.
 *
 * The demo's workflow runs on its own task queue, so the demo worker never picks up the tenants of a real
 * `tenant-mirror worker` sharing the same (persistent) dev server, and a later real worker never picks up acme.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { stringify as toYaml } from 'yaml';
import type { Client } from '@temporalio/client';
import { loadConfigFile } from '../../src/config/load';
import { connectClient } from '../../src/client';
import { tenantReport, type TenantReport } from '../../src/status';
import { EmbeddedPg } from '../embedded-postgres';
import { logger } from '../../src/logging';
import { PROJECT_ROOT } from '../paths';
import { temporalTarget, EMBEDDED_UI_PORT } from '../../src/config/temporal';
import { startEmbeddedTemporalIfNeeded } from '../temporal/embedded';
import type { DevServer } from '../temporal/dev-server';
import { createWorker, defaultDeps } from '../../src/worker';
import { MirrorMetrics } from '../../src/metrics';
import { startTelemetry } from '../../src/telemetry';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import { MIRROR_STATE_KEY, TENANT_ID_KEY, workflowIdFor } from '../../contract';
import type { TenantConfig } from '../../src/config/schema';
import { CRM_TABLES, DEFAULT_SEED, REFRESHED_TABLE, loadCrm, planCounts, type CrmTableName, type RowCounts } from './crm';
import { CHECK_CONNECTION_OPTIONS, compareTables, mirrorLag, totalRows } from './compare';
import { LiveChanges } from './live-changes';
import { PopulationDisplay, type TableProgressState } from './progress';

export const DEMO_TENANT = 'acme';
export const DEMO_TASK_QUEUE = 'tenant-mirror-demo';
const MIRROR_SCHEMA = 'acme';
const STATUS_EVERY_MS = 5_000;
const POLL_MS = 300;
const SYNC_TIMEOUT_MS = 60_000;
const SHADOW_PREFIX = '_shadow_';
const FORCE_EXIT_AFTER_MS = 2_000;
/** The tables kept up to date from change tracking (the keyless one is refreshed every REFRESH_EVERY instead). */
const MIRRORED_TABLES: readonly CrmTableName[] = CRM_TABLES.filter((t) => t !== REFRESHED_TABLE);
const REFRESH_EVERY = '30s';
/** The partner's hook the demo configures: an index of its own, created with the table (and carried over every repopulation). */
const HOOK_INDEX = 'contacts_by_email';

export interface DemoOptions {
  /** Approximate source rows (exact total over all tables, including the unmirrored one). */
  rows: number;
  /**
   * Stop on its own once the mirror equals the source: after the population and a short burst of live changes
   * (`liveMs`), the changes stop and the demo waits until every table's checksum matches. For tests.
   */
  untilSynced?: boolean;
  liveMs?: number;
  /** Where the two PostgreSQL servers and the tenants file live (default .data/demo). */
  dataDir?: string;
  seed?: number;
  changesPerSecond?: number;
  /** A Temporal to use instead of TEMPORAL_ADDRESS / the embedded dev server (tests). */
  temporal?: { address: string; namespace: string };
  /** A prebuilt workflow bundle (tests); otherwise the worker bundles the workflows at start. */
  workflowBundlePath?: string;
  out?: NodeJS.WriteStream;
}

export interface DemoResult {
  populationMs: number;
  /** Rows the product reported populating (mirrored tables only). */
  populatedRows: number;
  mirroredTables: string[];
  skipped: { name: string; reason: string }[];
  /** Tables without a usable key, mirrored by periodic refresh. */
  refreshed: string[];
  liveChanges: number;
  /** Whether every mirrored table's count and checksum matched the source at the end (null: not checked). */
  inSync: boolean | null;
  /** Where the worker's metrics were served (null: TENANT_MIRROR_METRICS=off, or the address was taken). */
  metricsUrl: string | null;
  /** Rows the change cycles applied, as the worker's metrics counted them (tenant_mirror_rows_applied_total). */
  rowsApplied: number;
  /** Rows in the mirror's `_mirror_log` at the end. */
  mirrorLogRows: number | null;
  /** Whether the partner hook's index exists on the mirror's contacts table. */
  hookIndex: boolean | null;
  sourceRows: number | null;
  mirrorRows: number | null;
}

class Stopped extends Error {}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const counts = planCounts(opts.rows); // refuses a bad --rows before anything starts
  const out = opts.out ?? process.stdout;
  const print = (line = ''): void => void out.write(`${line}\n`);
  const seed = opts.seed ?? DEFAULT_SEED;
  const dataDir = opts.dataDir ?? join(PROJECT_ROOT, '.data', 'demo');
  /** Undone in reverse order; `temporalUp` says whether the Temporal server still answers (Ctrl-C in a terminal stops it too). */
  const cleanups: { what: string; run: (temporalUp: boolean) => Promise<unknown>; ms: number }[] = [];
  let temporalAddress: string | null = null;
  const result: DemoResult = {
    populationMs: 0,
    populatedRows: 0,
    mirroredTables: [],
    skipped: [],
    refreshed: [],
    liveChanges: 0,
    inSync: null,
    sourceRows: null,
    mirrorRows: null,
    metricsUrl: null,
    rowsApplied: 0,
    mirrorLogRows: null,
    hookIndex: null,
  };

  if (!process.env.LOG_LEVEL) logger.level = 'warn';
  const metrics = new MirrorMetrics();
  const stop = new AbortController();
  const restoreSignals = opts.untilSynced ? () => undefined : takeOverSignals(stop, print);
  const checkStopped = (): void => {
    if (stop.signal.aborted) throw new Stopped();
  };

  let display: PopulationDisplay | null = null;
  let live: LiveChanges | null = null;
  try {
    // --- the worker's telemetry, before any Temporal connection: SDK logs into ours (errors only: the demo prints
    // its own progress), its metrics and ours on TENANT_MIRROR_METRICS. The demo handles signals itself.
    try {
      const telemetry = await startTelemetry(metrics, { shutdownSignals: [], sdkLogLevel: 'ERROR' });
      result.metricsUrl = telemetry.metricsUrl;
      cleanups.push({ what: 'metrics endpoint', run: () => telemetry.close(), ms: 2_000 });
    } catch (err) {
      print(`(no metrics endpoint: ${err instanceof Error ? err.message : String(err)})`);
    }
    // --- Temporal
    let temporal: { address: string; namespace: string };
    let uiBase: string | null = null;
    if (opts.temporal) {
      temporal = opts.temporal;
    } else {
      const target = temporalTarget();
      print(target.embedded ? 'Starting the embedded Temporal dev server (persistent, .data/temporal) ...' : `Using the Temporal cluster at ${target.address}`);
      const server: DevServer | null = await startEmbeddedTemporalIfNeeded(target);
      if (server) {
        cleanups.push({ what: 'Temporal dev server', run: () => server.stop(), ms: 15_000 });
        uiBase = server.uiUrl ?? `http://localhost:${EMBEDDED_UI_PORT}`;
      }
      temporal = { address: target.address, namespace: target.namespace };
    }
    temporalAddress = temporal.address;
    checkStopped();
    const workflowUrl = uiBase ? `${uiBase}/namespaces/${encodeURIComponent(temporal.namespace)}/workflows/${workflowIdFor(DEMO_TENANT)}` : null;

    // --- PostgreSQL: a source and a mirror, fresh each run
    print('Starting two PostgreSQL servers (source and mirror) ...');
    const [source, mirror] = await Promise.all([
      EmbeddedPg.start({ dir: join(dataDir, 'source'), persistent: false }),
      EmbeddedPg.start({ dir: join(dataDir, 'mirror'), persistent: false }),
    ]);
    cleanups.push({ what: 'PostgreSQL servers', run: () => Promise.all([source.stop(), mirror.stop()]), ms: 15_000 });
    const sourceUrl = await source.createDatabase('crm');
    const mirrorUrl = await mirror.createDatabase('partner');
    checkStopped();

    const connectSource = (): Promise<PgClient> => connectPg(sourceUrl);
    print(`Generating the CRM source: ${CRM_TABLES.length} tables, ${opts.rows.toLocaleString('en-US')} rows (seed ${seed}) ...`);
    const loaded = await loadCrm(connectSource, opts.rows, seed);
    print(`  loaded in ${(loaded.ms / 1000).toFixed(1)} s`);
    checkStopped();

    // --- the tenant's configuration (holds the throwaway servers' URLs: written, never printed)
    mkdirSync(dataDir, { recursive: true });
    const tenantsFile = join(dataDir, 'tenants.yaml');
    writeFileSync(
      tenantsFile,
      toYaml({
        tenants: [
          {
            id: DEMO_TENANT,
            source: { kind: 'postgres', url: sourceUrl },
            mirror: {
              kind: 'postgres',
              url: mirrorUrl,
              schema: MIRROR_SCHEMA,
              hooks: [{ tables: ['contacts'], afterCreate: `CREATE INDEX IF NOT EXISTS ${HOOK_INDEX} ON {{table}} (email)` }],
            },
            pollInterval: '1s',
            refreshInterval: REFRESH_EVERY,
          },
        ],
      }),
      { mode: 0o600 },
    );
    const [tenant] = loadConfigFile(tenantsFile); // fail fast if it does not validate
    process.env.TENANT_MIRROR_CONFIG = tenantsFile;

    // --- worker and tenant
    const { client, close: closeClient } = await connectClient(temporal.address, temporal.namespace);
    cleanups.push({ what: 'Temporal client', run: closeClient, ms: 5_000 });
    await terminateLeftover(client, print);
    print(opts.workflowBundlePath ? 'Starting the worker ...' : 'Starting the worker (bundling the workflow code takes a few seconds) ...');
    const worker = await createWorker({
      address: temporal.address,
      namespace: temporal.namespace,
      taskQueue: DEMO_TASK_QUEUE,
      deps: { ...defaultDeps(tenantsFile), metrics },
      ...(opts.workflowBundlePath ? { workflowBundle: { codePath: opts.workflowBundlePath } } : {}),
    });
    const running = worker.run();
    cleanups.push({
      what: 'worker',
      run: async (temporalUp) => {
        worker.shutdown();
        // Without a server the worker would retry reporting its last activity for a long time: give up sooner.
        if (await withTimeout(running, temporalUp ? 15_000 : 3_000)) await worker.connection.close();
      },
      ms: 20_000,
    });
    // Terminating our workflow first lets the worker's activities see it at their next heartbeat and stop.
    cleanups.push({
      what: 'demo workflow',
      run: async (temporalUp) => {
        if (!temporalUp) return;
        await client.withAbortSignal(AbortSignal.timeout(4_000), () => client.workflow.getHandle(workflowIdFor(DEMO_TENANT)).terminate('demo stopped'));
      },
      ms: 5_000,
    });
    checkStopped();

    const mirrorCheck = await connectPg(mirrorUrl);
    const sourceCheck = await connectSource();
    cleanups.push({ what: 'check connections', run: () => Promise.allSettled([mirrorCheck.end(), sourceCheck.end()]), ms: 5_000 });

    const started = Date.now();
    await client.workflow.start(tenantMirrorWorkflow, {
      workflowId: workflowIdFor(DEMO_TENANT),
      taskQueue: DEMO_TASK_QUEUE,
      args: [{ tenantId: DEMO_TENANT }],
      typedSearchAttributes: [
        { key: TENANT_ID_KEY, value: DEMO_TENANT },
        { key: MIRROR_STATE_KEY, value: 'bootstrapping' },
      ],
    });
    print(`Tenant ${DEMO_TENANT} started: workflow ${workflowIdFor(DEMO_TENANT)}${workflowUrl ? ` — ${workflowUrl}` : ''}`);
    if (result.metricsUrl) print(`Worker metrics (Prometheus): ${result.metricsUrl} — dashboard: docs/grafana-dashboard.json`);
    print('');

    // --- population
    display = new PopulationDisplay(
      CRM_TABLES.map((t) => ({ name: t, total: counts[t] })),
      out,
    );
    const status = await followPopulation(client, tenant!, mirrorCheck, display, counts, stop.signal, opts.untilSynced === true);
    display.stop();
    display = null;
    result.populationMs = Date.now() - started;
    result.mirroredTables = status.tables.filter((t) => t.state === 'mirroring').map((t) => t.name);
    result.skipped = status.tables.filter((t) => t.state === 'skipped').map((t) => ({ name: t.name, reason: t.error ?? 'skipped' }));
    result.populatedRows = status.tables.reduce((sum, t) => sum + (t.state === 'mirroring' ? (t.rows ?? 0) : 0), 0);
    const seconds = result.populationMs / 1000;
    print('');
    print(
      `Populated ${result.mirroredTables.length} tables, ${result.populatedRows.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s ` +
        `(${Math.round(result.populatedRows / Math.max(seconds, 0.001)).toLocaleString('en-US')} rows/s). Tenant state: mirroring.`,
    );
    for (const s of result.skipped) print(`  skipped ${s.name}: ${s.reason}`);
    result.refreshed = status.tables.filter((t) => t.mode === 'refresh').map((t) => t.name);
    for (const name of result.refreshed) print(`  ${name}: no primary or unique key, mirrored by a full refresh every ${REFRESH_EVERY}`);
    result.hookIndex = (await mirrorCheck.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${MIRROR_SCHEMA}.${HOOK_INDEX}`])).rows[0]?.ok === true;
    if (result.hookIndex) print(`  partner hook (mirror.hooks): index ${HOOK_INDEX} created on ${MIRROR_SCHEMA}.contacts with the table`);

    // --- live changes
    live = new LiveChanges({
      connect: connectSource,
      counts,
      seed,
      perSecond: opts.changesPerSecond ?? 300,
      onError: (err) => print(`live changes stopped: ${err instanceof Error ? err.message : String(err)}`),
    });
    live.start();
    print(`Making live changes at the source (~${opts.changesPerSecond ?? 300}/s).${opts.untilSynced ? '' : ' Ctrl-C to stop.'}`);
    if (workflowUrl) print(`Temporal UI: ${workflowUrl}`);
    if (opts.untilSynced) {
      await sleepUnlessStopped(opts.liveMs ?? 3_000, stop.signal);
      await live.stop();
      result.liveChanges = live.total;
      print(`Stopped live changes after ${result.liveChanges} changes; waiting for the mirror to equal the source ...`);
      const comparison = await waitForSync(sourceCheck, mirrorCheck, stop.signal, SYNC_TIMEOUT_MS);
      Object.assign(result, { inSync: comparison.equal, sourceRows: comparison.sourceRows, mirrorRows: comparison.mirrorRows });
      if (!comparison.equal) throw new Error(`the mirror did not converge within ${SYNC_TIMEOUT_MS / 1000} s (differing: ${comparison.differing.join(', ')})`);
      print(`Mirror equals source: ${MIRRORED_TABLES.length} tables, ${comparison.mirrorRows.toLocaleString('en-US')} rows, checksums match.`);
      await summarise(result, metrics, mirrorCheck, print);
    } else {
      await reportWhileRunning(client, live, sourceCheck, mirrorCheck, workflowUrl, temporal.address, stop.signal, print);
      await live.stop();
      result.liveChanges = live.total;
      print(`Stopping: ${result.liveChanges.toLocaleString('en-US')} live changes made.`);
      const comparison = await waitForSync(sourceCheck, mirrorCheck, AbortSignal.timeout(8_000), 8_000).catch(() => null);
      if (comparison) {
        Object.assign(result, { inSync: comparison.equal, sourceRows: comparison.sourceRows, mirrorRows: comparison.mirrorRows });
        print(
          comparison.equal
            ? `Final check: mirror equals source (${MIRRORED_TABLES.length} tables, ${comparison.mirrorRows.toLocaleString('en-US')} rows, checksums match).`
            : `Final check: still catching up on ${comparison.differing.join(', ')}.`,
        );
      }
      await summarise(result, metrics, mirrorCheck, print).catch(() => undefined);
    }
    return result;
  } catch (err) {
    if (err instanceof Stopped) return result;
    throw err;
  } finally {
    display?.stop();
    await live?.stop().catch(() => undefined);
    const temporalUp = temporalAddress !== null && (await reachable(temporalAddress));
    for (const step of cleanups.reverse()) {
      const ok = await withTimeout(step.run(temporalUp), step.ms).catch((err: unknown) => {
        logger.debug({ err, step: step.what }, 'demo cleanup step failed');
        return true;
      });
      if (!ok) print(`(${step.what} did not stop within ${step.ms / 1000} s)`);
    }
    restoreSignals();
    if (!opts.untilSynced) {
      print('Demo stopped.');
      // Everything is stopped; should a native handle still hold the event loop (a worker that could not reach
      // its server), do not hang the terminal on it.
      setTimeout(() => process.exit(), 3_000).unref();
    }
  }
}

/** Whether something accepts TCP connections at host:port (within half a second). */
function reachable(address: string): Promise<boolean> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 500 });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/**
 * A connection for the demo's own queries. A server that goes away (Ctrl-C in a terminal reaches the servers
 * too) makes an idle client emit 'error'; the next query reports it, so the event itself is ignored.
 */
async function connectPg(url: string): Promise<PgClient> {
  const client = new PgClient({ connectionString: url, options: CHECK_CONNECTION_OPTIONS });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** What the worker's metrics and the mirror's `_mirror_log` say the demo did. */
async function summarise(result: DemoResult, metrics: MirrorMetrics, mirrorCheck: PgClient, print: (line: string) => void): Promise<void> {
  const applied = (operation: string): Promise<number> => metrics.sum('tenant_mirror_rows_applied_total', { tenant: DEMO_TENANT, operation });
  const [inserts, updates, deletes] = [await applied('insert'), await applied('update'), await applied('delete')];
  result.rowsApplied = inserts + updates + deletes;
  const log = await mirrorCheck.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${MIRROR_SCHEMA}._mirror_log`);
  result.mirrorLogRows = Number(log.rows[0]?.n ?? 0);
  print(
    `Worker metrics: ${fmt(inserts)} inserts, ${fmt(updates)} updates, ${fmt(deletes)} deletes applied; ` +
      `${MIRROR_SCHEMA}._mirror_log holds ${fmt(result.mirrorLogRows)} rows (one per changed cycle, population and wipe).`,
  );
}

/**
 * Ctrl-C / SIGTERM stop the demo in order (live changes, workflow, worker, servers). Existing listeners stay:
 * tsx keeps one that tells its parent process this one handles the signal itself.
 */
function takeOverSignals(stop: AbortController, print: (line: string) => void): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let first = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop.signal.aborted) {
      // One Ctrl-C arrives more than once (the terminal signals the whole group, and npx/tsx relay it too);
      // only a later, deliberate second one means "give up on a clean stop".
      if (Date.now() - first < FORCE_EXIT_AFTER_MS) return;
      print(`\n${signal} again: exiting without cleaning up.`);
      process.exit(130);
    }
    first = Date.now();
    print(`\n${signal}: stopping ...`);
    stop.abort();
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.removeListener(s, onSignal);
  };
}

/** A demo that crashed may have left its workflow running (the dev server is persistent): replace it. */
async function terminateLeftover(client: Client, print: (line: string) => void): Promise<void> {
  const handle = client.workflow.getHandle(workflowIdFor(DEMO_TENANT));
  try {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return;
    await handle.terminate('replaced by a new demo run');
    print(`  terminated the previous demo's workflow ${workflowIdFor(DEMO_TENANT)}`);
  } catch (err) {
    if (err instanceof Error && err.name === 'WorkflowNotFoundError') return;
    throw err;
  }
}

/**
 * Polls the tenant's status (the workflow's state, the mirror's committed figures) and the mirror's COPY progress
 * until the tenant is mirroring, updating the bars. Returns the final status.
 */
async function followPopulation(
  client: Client,
  tenant: TenantConfig,
  mirrorCheck: PgClient,
  display: PopulationDisplay,
  counts: RowCounts,
  signal: AbortSignal,
  failOnBlocked: boolean,
): Promise<TenantReport> {
  let lastProblem = '';
  for (;;) {
    if (signal.aborted) throw new Stopped();
    const [status, copying] = await Promise.all([tenantReport(client, DEMO_TENANT, tenant), copyProgress(mirrorCheck)]);
    if (!status.running) throw new Error(`the demo workflow is not running: ${status.reason ?? ''}`);

    let problem = status.activityError ?? '';
    for (const table of status.tables) {
      // The mirror reports committed chunks; the running COPY adds the rows of the chunk in flight.
      const copied = table.state === 'populating' ? (table.rows ?? 0) + (copying.get(table.name) ?? 0) : 0;
      const state: TableProgressState =
        table.state === 'mirroring' ? 'mirrored' : table.state === 'skipped' ? 'skipped' : table.state === 'failed' ? 'failed' : table.state === 'populating' ? 'populating' : 'pending';
      const note = state === 'skipped' || state === 'failed' ? `${state}: ${table.error ?? ''}` : state;
      display.update(table.name, table.state === 'mirroring' ? (table.rows ?? counts[table.name as CrmTableName] ?? 0) : copied, state, note);
    }
    if (status.state === 'blocked' || status.state === 'paused') problem = problem || `tenant ${status.state}: ${status.reason ?? ''}`;
    if (problem && problem !== lastProblem) display.log(`  ! ${problem}`);
    lastProblem = problem;
    if (status.state === 'blocked' && failOnBlocked) throw new Error(`the demo tenant is blocked: ${status.reason ?? 'unknown reason'}`);
    if (status.state === 'mirroring' && status.tables.length > 0 && status.tables.every((t) => t.state !== 'pending' && t.state !== 'populating')) {
      return status;
    }
    await sleepUnlessStopped(POLL_MS, signal);
  }
}

/** Rows of the COPY now running into a shadow table, per mirrored table name. */
async function copyProgress(mirrorCheck: PgClient): Promise<Map<string, number>> {
  const res = await mirrorCheck.query<{ relname: string; tuples: string }>(
    `SELECT c.relname, p.tuples_processed AS tuples
       FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid
      WHERE p.command = 'COPY FROM'`,
  );
  const out = new Map<string, number>();
  for (const row of res.rows) {
    if (row.relname.startsWith(SHADOW_PREFIX)) out.set(row.relname.slice(SHADOW_PREFIX.length), Number(row.tuples));
  }
  return out;
}

/** Every few seconds: changes made, how far the mirror trails, row totals on both sides. Until stopped. */
async function reportWhileRunning(
  client: Client,
  live: LiveChanges,
  sourceCheck: PgClient,
  mirrorCheck: PgClient,
  workflowUrl: string | null,
  address: string,
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<void> {
  const where = workflowUrl ?? `workflow ${workflowIdFor(DEMO_TENANT)} on ${address}`;
  let previous = 0;
  while (!signal.aborted) {
    await sleepUnlessStopped(STATUS_EVERY_MS, signal).catch(() => undefined);
    if (signal.aborted) return;
    try {
      const [lag, sourceRows, mirrorRows, status] = await Promise.all([
        mirrorLag(sourceCheck, mirrorCheck, MIRROR_SCHEMA),
        totalRows(sourceCheck, 'public', MIRRORED_TABLES),
        totalRows(mirrorCheck, MIRROR_SCHEMA, MIRRORED_TABLES),
        tenantReport(client, DEMO_TENANT),
      ]);
      const total = live.total;
      const s = live.stats;
      const clock = new Date().toISOString().slice(11, 19);
      const state =
        (status.state === 'mirroring' ? '' : ` | tenant ${status.state}${status.reason ? `: ${status.reason}` : ''}`) +
        (status.activityError ? ` | ${status.activityError}` : '');
      print(
        `${clock} changes ${fmt(total)} (+${fmt(total - previous)}: ${fmt(s.inserts)} ins, ${fmt(s.updates)} upd, ${fmt(s.deletes)} del)` +
          ` | mirror lag ${lag === null ? '?' : `${(lag / 1000).toFixed(1)} s`}` +
          ` | rows source ${sourceRows.toLocaleString('en-US')} mirror ${mirrorRows.toLocaleString('en-US')}${state} | ${where}`,
      );
      previous = total;
    } catch (err) {
      if (signal.aborted) return;
      print(`(status check failed: ${err instanceof Error ? err.message : String(err)})`);
    }
  }
}

async function waitForSync(sourceCheck: PgClient, mirrorCheck: PgClient, signal: AbortSignal, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const comparison = await compareTables(sourceCheck, mirrorCheck, MIRROR_SCHEMA, MIRRORED_TABLES);
    if (comparison.equal || Date.now() >= deadline || signal.aborted) return comparison;
    await sleepUnlessStopped(500, signal).catch(() => undefined);
  }
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function sleepUnlessStopped(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Stopped());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Stopped());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves true when the promise settles in time, false otherwise (it keeps running; we stop waiting). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
