/**
 * `npm run bench [-- --quick] [--rows N] [--runs N] [--tenants N] [--rate N] [--out FILE] [--no-doc] [--render FILE]`
 *
 * Starts its own servers, generates the data set, and measures tenant-mirror against PostgreSQL's own tools
 * (raw COPY pipe, pg_dump | psql, native logical replication). Prints a table, writes a JSON file under
 * bench/results/ and (full runs) bench/PERFORMANCE.md. Exits non-zero when a measurement failed.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../dev/paths';
import type { BenchOptions, Ctx } from './context';
import { generate } from './data';
import { startEnv, withPg } from './env';
import { runPopulation } from './population';
import { runLargeTable } from './large-table';
import { runIncremental, runLag } from './convergence';
import { runMemory } from './memory';
import { runIdleCost } from './cost';
import { runOverhead } from './overhead';
import { runMany } from './many';
import { machine, performanceMarkdown, renderTable, renderTargets, tableRows, targets, updateReadme, type Results } from './report';
import { TenantsFile, startWorkerProcess } from './tenants';

function options(): { opts: BenchOptions; out: string | undefined; doc: boolean } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rows: { type: 'string' },
      runs: { type: 'string' },
      tenants: { type: 'string' },
      rate: { type: 'string' },
      changes: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      'no-doc': { type: 'boolean', default: false },
      only: { type: 'string' },
      render: { type: 'string' },
    },
  });
  const quick = values.quick ?? false;
  const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  const opts: BenchOptions = quick
    ? { quick, seed: 42, rows: 20_000, runs: 1, changes: 5_000, rate: 1000, lagSeconds: 4, idleSeconds: 5, overheadSeconds: 2, memoryRows: [5_000, 20_000], tenants: 5, manySeconds: 4 }
    : { quick, seed: 42, rows: 1_000_000, runs: 5, changes: 100_000, rate: 1000, lagSeconds: 60, idleSeconds: 330, overheadSeconds: 10, memoryRows: [100_000, 400_000], tenants: 300, manySeconds: 60 };
  opts.rows = num(values.rows, opts.rows);
  opts.runs = num(values.runs, opts.runs);
  opts.tenants = num(values.tenants, opts.tenants);
  opts.rate = num(values.rate, opts.rate);
  opts.changes = num(values.changes, opts.changes);
  opts.seed = num(values.seed, opts.seed);
  only = values.only ? new Set(values.only.split(',')) : null;
  render = values.render ?? null;
  // A partial run (--only) must not overwrite the documents with a table of missing figures.
  return { opts, out: values.out, doc: !quick && !values['no-doc'] && values.only === undefined };
}

let only: Set<string> | null = null;
/** `--render FILE`: rewrite bench/PERFORMANCE.md and the README's figures from an earlier results file (after editing the notes). */
let render: string | null = null;

function renderOnly(file: string): number {
  const stored = JSON.parse(readFileSync(file, 'utf8')) as Results;
  // Targets are judged again: a results file may have had a measurement replaced (see its "note").
  const results: Results = { ...stored, targets: targets(stored) };
  const doc = performanceMarkdown(results, join(PROJECT_ROOT, 'bench', 'performance-notes.md'), relative(PROJECT_ROOT, resolve(file)));
  writeFileSync(join(PROJECT_ROOT, 'bench', 'PERFORMANCE.md'), doc);
  updateReadme(join(PROJECT_ROOT, 'README.md'), results, relative(PROJECT_ROOT, resolve(file)));
  process.stdout.write(`${renderTable(tableRows(results), false)}\n\n${renderTargets(results.targets, false)}\n`);
  return 0;
}

async function main(): Promise<number> {
  const { opts, out, doc } = options();
  if (render) return renderOnly(render);
  const started = Date.now();
  const log = (line: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  log(`tenant-mirror benchmark (${opts.quick ? 'quick' : 'full'}): ${JSON.stringify(opts)}`);
  const env = await startEnv(log);
  const errors: Record<string, string> = {};
  const partial: Omit<Results, 'targets' | 'durationSeconds'> = {
    date: new Date().toISOString(),
    machine: machine(),
    options: opts,
    population: null,
    largeTable: null,
    incremental: null,
    lag: null,
    memory: null,
    idleCost: null,
    overhead: null,
    many: null,
    errors,
  };
  const tenants = new TenantsFile('tenants');
  let worker: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  try {
    const sourceUrl = await env.source.createDatabase('app');
    const mirrorUrl = await env.mirror.createDatabase('partner');
    const t = performance.now();
    const counts = await withPg(sourceUrl, (c) => generate(c, opts.rows, opts.seed));
    const rows = Object.values(counts).reduce((a, b) => a + b, 0);
    log(`data: ${JSON.stringify(counts)} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    worker = await startWorkerProcess(env, tenants, 'bench', 'worker-main');
    const ctx: Ctx = { env, opts, sourceUrl, mirrorUrl, rows, tenants, worker, log };

    const stage = async <K extends keyof typeof partial>(key: K, label: string, fn: () => Promise<(typeof partial)[K]>): Promise<void> => {
      if (only && !only.has(key)) return;
      log(`${label} ...`);
      try {
        partial[key] = await fn();
      } catch (err) {
        errors[key] = err instanceof Error ? err.message : String(err);
        log(`  FAILED: ${errors[key]}`);
      }
    };
    await stage('population', '1. initial population', () => runPopulation(ctx));
    const main = partial.population !== null;
    if (main) {
      await stage('incremental', '2. incremental convergence', () => runIncremental(ctx));
      await stage('lag', '3. lag under load', () => runLag(ctx));
      await stage('idleCost', '5. idle tenant cost', () => runIdleCost(ctx));
    } else {
      for (const k of ['incremental', 'lag', 'idleCost'] as const) errors[k] ??= 'skipped: population failed';
    }
    // After the idle window: its copies would be the idle tenant's noise.
    await stage('largeTable', '1b. one large table', () => runLargeTable(ctx));
    await worker.stop();
    worker = null;
    await stage('memory', '4. worker memory', () => runMemory(ctx));
    await stage('overhead', '6. source overhead', () => runOverhead(ctx));
    await stage('many', `7. ${opts.tenants} tenants`, () => runMany(ctx));
  } finally {
    await worker?.stop();
    await env.stop();
  }

  const durationSeconds = (Date.now() - started) / 1000;
  const base = { ...partial, durationSeconds };
  const results: Results = { ...base, targets: targets(base) };
  const dir = join(PROJECT_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = out ?? join(dir, opts.quick ? 'quick-latest.json' : `${results.date.slice(0, 19).replaceAll(':', '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  if (doc) {
    writeFileSync(join(PROJECT_ROOT, 'bench', 'PERFORMANCE.md'), performanceMarkdown(results, join(PROJECT_ROOT, 'bench', 'performance-notes.md'), relative(PROJECT_ROOT, file)));
    updateReadme(join(PROJECT_ROOT, 'README.md'), results, relative(PROJECT_ROOT, file));
  }

  process.stdout.write(`\n${renderTable(tableRows(results), false)}\n\n${renderTargets(results.targets, false)}\n\n`);
  process.stdout.write(`results: ${relative(PROJECT_ROOT, file)} (${Math.round(durationSeconds)} s)\n`);
  for (const [k, v] of Object.entries(errors)) process.stdout.write(`FAILED ${k}: ${v}\n`);
  return Object.keys(errors).length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
