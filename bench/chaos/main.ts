/**
 * `npm run chaos [-- --short] [--rounds N] [--rate N] [--out FILE]`: one tenant under a steady write load on real servers (two
 * embedded PostgreSQL, the Temporal dev server on a database file, two worker processes), taken through rounds of
 * faults (faults.ts). After each fault: the time until changes reach the mirror again. At the end: every table
 * compared exactly, row by row, and the rows lost counted (must be 0). Prints a table per fault (median and max
 * recovery, target, rows lost), writes bench/results/chaos-*.json (or --out), and exits 1 when a row was lost, 3 when
 * nothing was lost but a recovery missed its target. `--short` (what the test suite runs): one round of each fault
 * on a small data set.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { bundleWorkflowCode } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { workflowIdFor } from '../../contract';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PROJECT_ROOT } from '../../dev/paths';
import { startDevServer, type DevServer } from '../../dev/temporal/dev-server';
import { spawnWorker, type SpawnedWorker } from '../../dev/worker-spawn';
import { tenantMirrorWorkflow } from '../../workflows/tenant-mirror';
import { median, q, sleep } from '../env';
import { FAULTS, hostOf, type ChaosWorld } from './faults';
import { CHAOS_TABLES, ProbeWatcher, schemaSql, Writer } from './load';

const DIR = process.env.CHAOS_DATA_DIR ?? join(PROJECT_ROOT, '.data', 'chaos');
const TENANT = 'chaos';
const TASK_QUEUE = 'chaos';
const WORKERS = ['chaos-w1', 'chaos-w2'];
/** A fault whose changes have not arrived after this long is a failed round. */
const ROUND_TIMEOUT_MS = 180_000;

interface FaultResult {
  fault: string;
  what: string;
  targetSeconds: number | null;
  recoverySeconds: number[];
  medianSeconds: number;
  maxSeconds: number;
  met: boolean | null;
  notes: string[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { short: { type: 'boolean', default: false }, rounds: { type: 'string' }, rate: { type: 'string' }, out: { type: 'string' } } });
  const short = values.short ?? false;
  const rounds = Number(values.rounds ?? (short ? 1 : 3));
  const rate = Number(values.rate ?? (short ? 50 : 150));
  const accounts = short ? 5_000 : 100_000;
  const bigRows = short ? 200_000 : 1_000_000;
  const t0 = performance.now();
  const log = (line: string): void => console.log(`[${String(Math.round((performance.now() - t0) / 1000)).padStart(4)} s] ${line}`);

  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const [source, mirror, bundle] = await Promise.all([
    EmbeddedPg.start({ dir: join(DIR, 'source') }),
    EmbeddedPg.start({ dir: join(DIR, 'mirror') }),
    bundleWorkflowCode({ workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts'), logger: silent() }),
  ]);
  const bundlePath = join(DIR, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  const temporalDb = join(DIR, 'temporal.db');
  let server: DevServer = await startDevServer({ dbFile: temporalDb });
  const port = Number(server.address.split(':')[1]);
  let connection = await Connection.connect({ address: server.address });
  let client = new Client({ connection, namespace: server.namespace });

  const sourceUrl = await source.createDatabase('chaos_source');
  const mirrorUrl = await mirror.createDatabase('chaos_mirror');
  await q(sourceUrl, schemaSql(accounts, bigRows));
  const tenantsFile = join(DIR, 'tenants.yaml');
  writeFileSync(
    tenantsFile,
    stringify({ tenants: [{ id: TENANT, source: { kind: 'postgres', url: sourceUrl }, mirror: { kind: 'postgres', url: mirrorUrl, schema: 'chaos' }, pollInterval: '500ms', batchBytes: '2MB' }] }),
  );

  const workers = new Map<string, SpawnedWorker>();
  const startWorker = async (identity: string): Promise<void> => {
    const w = await spawnWorker({
      temporalAddress: server.address,
      namespace: server.namespace,
      taskQueue: TASK_QUEUE,
      workflowBundlePath: bundlePath,
      tenantsFile,
      identity,
      logFile: join(DIR, `${identity}.log`),
    });
    workers.set(identity, w);
  };
  const world: ChaosWorld = {
    source,
    sourceUrl,
    mirror,
    mirrorUrl,
    mirrorSchema: 'chaos',
    client: () => client,
    tenantId: TENANT,
    workers,
    startWorker,
    async restartTemporal() {
      await server.kill();
      server = await startDevServer({ dbFile: temporalDb, port });
      await connection.close().catch(() => undefined);
      connection = await Connection.connect({ address: server.address });
      client = new Client({ connection, namespace: server.namespace });
    },
    log,
  };

  const writer = new Writer(sourceUrl, rate, accounts);
  const probes = new ProbeWatcher(mirrorUrl, 'chaos.probe');
  const results: FaultResult[] = [];
  let lost: Record<string, number> = {};
  try {
    for (const id of WORKERS) await startWorker(id);
    await client.workflow.start(tenantMirrorWorkflow, { workflowId: workflowIdFor(TENANT), taskQueue: TASK_QUEUE, args: [{ tenantId: TENANT }] });
    await waitPopulated(mirrorUrl);
    log(`populated: ${accounts} accounts, ${accounts} orders, ${bigRows} rows of big; writing ${rate} transactions/s`);
    writer.start();
    probes.start();
    await hostOf(world, 'syncSession');
    await sleep(3_000);

    for (const fault of FAULTS) {
      const result: FaultResult = { fault: fault.name, what: fault.what, targetSeconds: fault.targetSeconds, recoverySeconds: [], medianSeconds: NaN, maxSeconds: NaN, met: null, notes: [] };
      for (let round = 1; round <= rounds; round++) {
        await hostOf(world, 'syncSession');
        const { at, note, after } = await fault.inject(world);
        const seq = await writer.firstProbeAfter(at, ROUND_TIMEOUT_MS);
        const arrived = await probes.arrival(seq, ROUND_TIMEOUT_MS);
        await after?.();
        const seconds = (arrived - at) / 1000;
        result.recoverySeconds.push(seconds);
        if (note && !result.notes.includes(note)) result.notes.push(note);
        log(`${fault.name} (round ${round}): changes reach the mirror again after ${seconds.toFixed(1)} s`);
        while (workers.size < WORKERS.length) await sleep(200);
        if (fault.name === 'worker SIGKILL mid-population' && !(await lastPopulationResumed(client))) {
          result.notes = result.notes.filter((n) => n !== note);
          result.notes.push('population started over instead of resuming');
        }
        await sleep(2_000);
      }
      result.medianSeconds = median(result.recoverySeconds);
      result.maxSeconds = Math.max(...result.recoverySeconds);
      result.met = fault.targetSeconds === null ? null : result.maxSeconds <= fault.targetSeconds;
      results.push(result);
    }

    await writer.stop();
    await probes.stop();
    log(`load stopped (${writer.errors} writes failed while the source was away, none committed); waiting for the mirror`);
    lost = await waitEqual(sourceUrl, mirrorUrl);
  } finally {
    await writer.stop().catch(() => undefined);
    await probes.stop().catch(() => undefined);
    await Promise.allSettled([...workers.values()].map((w) => w.kill()));
    await connection.close().catch(() => undefined);
    await Promise.allSettled([server.stop(), source.stop(), mirror.stop()]);
  }

  const rowsLost = Object.values(lost).reduce((a, b) => a + b, 0);
  printTable(results, rowsLost, rounds);
  const out = values.out ?? join(PROJECT_ROOT, 'bench', 'results', short ? 'chaos-short-latest.json' : `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), short, rounds, rate, accounts, bigRows, rowsLost, lostByTable: lost, results }, null, 2) + '\n');
  log(`results: ${out}`);
  const missed = results.filter((r) => r.met === false || r.notes.some((n) => n.includes('started over')));
  if (rowsLost > 0 || missed.length > 0) console.error(`chaos: FAILED (${rowsLost} rows lost; missed: ${missed.map((m) => m.fault).join(', ') || 'none'})`);
  return rowsLost > 0 ? 1 : missed.length > 0 ? 3 : 0;
}

/** Every chaos table has its LSN in the mirror: populated. */
async function waitPopulated(mirrorUrl: string): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const rows = await q<{ n: string }>(mirrorUrl, `SELECT count(*)::text AS n FROM chaos._mirror_state WHERE lsn IS NOT NULL AND table_name = ANY($1)`, [[...CHAOS_TABLES]]).catch(() => [
      { n: '0' },
    ]);
    if (Number(rows[0]?.n) === CHAOS_TABLES.length) return;
    if (Date.now() > deadline) throw new Error('the chaos tenant was not populated within 10 minutes');
    await sleep(500);
  }
}

/** Whether the last completed population of the history resumed from a committed chunk (its result says so). */
async function lastPopulationResumed(client: Client): Promise<boolean> {
  const history = await client.workflow.getHandle(workflowIdFor(TENANT)).fetchHistory();
  const events = history.events ?? [];
  const scheduled = new Map<string, string>();
  let resumed = false;
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s?.activityType?.name) scheduled.set(e.eventId?.toString() ?? '', s.activityType.name);
    const done = e.activityTaskCompletedEventAttributes;
    if (e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED && done && scheduled.get(done.scheduledEventId?.toString() ?? '') === 'populateTable') {
      const payload = done.result?.payloads?.[0];
      const result = payload ? defaultPayloadConverter.fromPayload<{ resumed?: boolean }>(payload) : {};
      resumed = result.resumed === true;
    }
  }
  return resumed;
}

/**
 * Waits until every table is equal on both sides, then counts the rows lost: source rows the mirror does not hold
 * as they are (missing or different). Compared by key and an md5 of the row's text, on each server separately.
 */
async function waitEqual(sourceUrl: string, mirrorUrl: string): Promise<Record<string, number>> {
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    const lost: Record<string, number> = {};
    for (const table of CHAOS_TABLES) {
      const [src, dst] = await Promise.all([rowDigests(sourceUrl, `public.${table}`), rowDigests(mirrorUrl, `chaos.${table}`)]);
      let missing = 0;
      for (const [key, digest] of src) if (dst.get(key) !== digest) missing += 1;
      const extra = [...dst.keys()].filter((k) => !src.has(k)).length;
      lost[table] = missing + extra;
    }
    if (Object.values(lost).every((n) => n === 0) || Date.now() > deadline) return lost;
    await sleep(1_000);
  }
}

const KEYS: Record<(typeof CHAOS_TABLES)[number], string> = { accounts: 'id', orders: 'id', big: 'id', probe: 'seq' };

async function rowDigests(url: string, table: string): Promise<Map<string, string>> {
  const key = KEYS[table.slice(table.indexOf('.') + 1) as (typeof CHAOS_TABLES)[number]];
  const rows = await q<{ k: string; d: string }>(url, `SELECT ${key}::text AS k, md5(t::text) AS d FROM ${table} t`);
  return new Map(rows.map((r) => [r.k, r.d]));
}

function printTable(results: FaultResult[], rowsLost: number, rounds: number): void {
  const width = Math.max(...results.map((r) => r.fault.length));
  console.log('');
  console.log(`${'fault'.padEnd(width)}  rounds  median s   max s  target s  met   notes`);
  for (const r of results) {
    const met = r.met === null ? '-' : r.met ? 'yes' : 'NO';
    console.log(
      `${r.fault.padEnd(width)}  ${String(rounds).padStart(6)}  ${r.medianSeconds.toFixed(1).padStart(8)}  ${r.maxSeconds.toFixed(1).padStart(6)}  ${String(r.targetSeconds ?? '-').padStart(8)}  ${met.padEnd(4)}  ${r.notes.join('; ')}`,
    );
  }
  console.log(`rows lost: ${rowsLost} (every table compared row by row after the load)`);
}

function silent() {
  const noop = (): void => undefined;
  return { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`chaos: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(2);
  },
);
