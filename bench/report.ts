/**
 * The results: one object (written as JSON), a table for the terminal, and bench/PERFORMANCE.md (the figures
 * plus the hand-written notes in bench/performance-notes.md).
 */
import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { BenchOptions } from './context';
import type { PopulationResult } from './population';
import type { LargeTableResult } from './large-table';
import type { IncrementalResult, LagResult } from './convergence';
import type { MemoryPoint } from './memory';
import type { IdleCost } from './cost';
import type { OverheadResult } from './overhead';
import type { ManyResult } from './many';

export interface Machine {
  nproc: number;
  memoryGB: number;
  cpu: string;
  node: string;
}

export interface Results {
  date: string;
  machine: Machine;
  options: BenchOptions;
  durationSeconds: number;
  population: PopulationResult | null;
  largeTable: LargeTableResult | null;
  incremental: IncrementalResult | null;
  lag: LagResult | null;
  memory: MemoryPoint[] | null;
  idleCost: IdleCost | null;
  overhead: OverheadResult | null;
  many: ManyResult | null;
  errors: Record<string, string>;
  targets: Target[];
}

export interface Target {
  name: string;
  target: string;
  value: string;
  met: boolean | null;
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // Not Linux.
  }
  return { nproc: cpus().length, memoryGB: Math.round((totalmem() / 1024 ** 3) * 10) / 10, cpu, node: process.version };
}

const f = (n: number | undefined, d = 1): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));
const MB = 1024 * 1024;

export function targets(r: Omit<Results, 'targets'>): Target[] {
  const out: Target[] = [];
  const p = r.population;
  if (p) {
    const ratio = p.seconds.copyPipe / p.seconds.tenantMirror;
    out.push({ name: 'population vs raw COPY pipe', target: '≥ 0.9×', value: `${f(ratio, 2)}×`, met: ratio >= 0.9 });
    const vsLr = p.seconds.logicalReplication / p.seconds.tenantMirror;
    out.push({
      name: 'population vs logical replication',
      target: '≥ 1.3× faster',
      value: `${f(p.seconds.tenantMirror, 2)} s vs ${f(p.seconds.logicalReplication, 2)} s (${f(vsLr, 2)}×)`,
      met: vsLr >= 1.3,
    });
  }
  const big = r.largeTable;
  if (big) {
    const vsLr = big.seconds.logicalReplication / big.seconds.split;
    out.push({
      name: `population of one ${big.rows.toLocaleString('en')}-row table vs logical replication`,
      target: '≥ 1.3× faster',
      value: `${f(big.seconds.split, 2)} s vs ${f(big.seconds.logicalReplication, 2)} s (${f(vsLr, 2)}×)`,
      met: vsLr >= 1.3,
    });
  }
  const inc = r.incremental;
  if (inc) {
    const vsLr = inc.seconds.logicalReplication / inc.seconds.tenantMirror;
    out.push({
      name: `incremental ${inc.changedRows} rows vs logical replication`,
      target: '≥ 1.2× faster',
      value: `${f(inc.seconds.tenantMirror, 2)} s vs ${f(inc.seconds.logicalReplication, 2)} s (${f(vsLr, 2)}×)`,
      met: vsLr >= 1.2,
    });
  }
  if (r.lag) out.push({ name: `lag p99 at ${r.lag.rate}/s, 1 s poll`, target: '≤ 500 ms', value: `${f(r.lag.tenantMirror.p99Ms, 0)} ms`, met: r.lag.tenantMirror.p99Ms <= 500 });
  if (r.memory?.length) {
    const peak = Math.max(...r.memory.map((m) => Math.max(m.peakRssMB, m.hwmMB)));
    out.push({ name: 'worker peak RSS (VmHWM, any table size)', target: '< 256 MB', value: `${f(peak, 0)} MB`, met: peak < 256 });
  }
  if (r.idleCost) {
    out.push({ name: 'idle tenant billable actions / h', target: '≤ 30', value: f(r.idleCost.perHour.billableActions, 0), met: r.idleCost.perHour.billableActions <= 30 });
    out.push({ name: 'idle tenant history events / h', target: '≤ 100', value: f(r.idleCost.perHour.historyEvents, 0), met: r.idleCost.perHour.historyEvents <= 100 });
    out.push({ name: 'idle tenant Temporal frontend calls / h', target: '≤ 200', value: f(r.idleCost.perHour.frontendCalls, 0), met: r.idleCost.perHour.frontendCalls <= 200 });
  }
  if (r.overhead?.rows) {
    for (const row of r.overhead.rows) {
      for (const mode of ['trigger', 'logical'] as const) {
        const cost = row.cost[mode];
        out.push({ name: `change tracking source write cost, ${mode}, ${row.commits} commits`, target: '≤ 15%', value: `${f(cost * 100, 1)}%`, met: cost <= 0.15 });
      }
    }
  } else if (r.overhead) {
    out.push({ name: 'change tracking source write cost', target: '≤ 25%', value: `${f(r.overhead.cost * 100, 1)}%`, met: r.overhead.cost <= 0.25 });
  }
  if (r.many) {
    out.push({ name: `${r.many.tenants} tenants on one worker, lag p99`, target: '300 tenants, ≤ 2000 ms', value: `${f(r.many.lagP99Ms, 0)} ms`, met: r.many.tenants >= 300 && r.many.lagP99Ms <= 2000 });
    out.push({
      name: `worker RSS with ${r.many.tenants} tenants`,
      target: '< 256 MB',
      value: `${f(r.many.workerPeakRssMB, 0)} MB peak (${f(r.many.workerPeakRssMB / r.many.tenants, 2)} MB per tenant)`,
      met: r.many.workerPeakRssMB < 256,
    });
    const c = r.many.connectionsPerTenant;
    out.push({ name: 'connections per tenant (source + mirror)', target: 'bounded', value: `${f(c.source, 2)} + ${f(c.mirror, 2)}`, met: c.source + c.mirror <= 8 });
  }
  return out;
}

/** Rows of [measure, tenant-mirror, comparison, ratio/notes]. */
export function tableRows(r: Results): string[][] {
  const rows: string[][] = [['measure', 'tenant-mirror', 'PostgreSQL tools', 'notes']];
  const p = r.population;
  if (p) {
    const rate = (s: number): string => `${f(p.rows / s / 1000, 0)}k rows/s, ${f(p.bytes / MB / s, 1)} MB/s`;
    rows.push([`population ${p.rows} rows, ${f(p.bytes / MB, 0)} MB (median of ${p.runs})`, `${f(p.seconds.tenantMirror, 2)} s (${rate(p.seconds.tenantMirror)})`, '', '']);
    for (const [label, s] of [
      ['  raw COPY pipe', p.seconds.copyPipe],
      ['  pg_dump | psql', p.seconds.pgDump],
      ['  logical replication initial sync', p.seconds.logicalReplication],
    ] as const) {
      rows.push([label, '', `${f(s, 2)} s (${rate(s)})`, `tenant-mirror at ${f(s / p.seconds.tenantMirror, 2)}× its speed`]);
    }
  }
  const big = r.largeTable;
  if (big) {
    const rate = (s: number): string => `${f(big.rows / s / 1000, 0)}k rows/s, ${f(big.bytes / MB / s, 1)} MB/s`;
    rows.push([`population of one table, ${big.rows} rows, ${f(big.bytes / MB, 0)} MB (median of ${big.runs})`, `${f(big.seconds.split, 2)} s split over ${big.streams} streams (${rate(big.seconds.split)})`, '', '']);
    rows.push(['  tenant-mirror in one stream', `${f(big.seconds.oneStream, 2)} s (${rate(big.seconds.oneStream)})`, '', `the split at ${f(big.seconds.oneStream / big.seconds.split, 2)}× its speed`]);
    for (const [label, s] of [
      ['  raw COPY pipe (one stream)', big.seconds.copyPipe],
      ['  logical replication initial sync (one table: one sync worker)', big.seconds.logicalReplication],
    ] as const) {
      rows.push([label, '', `${f(s, 2)} s (${rate(s)})`, `split tenant-mirror at ${f(s / big.seconds.split, 2)}× its speed`]);
    }
  }
  const inc = r.incremental;
  if (inc) {
    rows.push([
      `incremental ${inc.changedRows} changed rows (60/30/10 upd/ins/del)`,
      `${f(inc.seconds.tenantMirror, 2)} s`,
      `logical replication ${f(inc.seconds.logicalReplication, 2)} s`,
      `${f(inc.seconds.logicalReplication / inc.seconds.tenantMirror, 2)}× its speed`,
    ]);
  }
  const l = r.lag;
  if (l) {
    rows.push([
      `lag at ${l.rate} changes/s for ${l.seconds} s (p50 / p99 / max)`,
      `${f(l.tenantMirror.p50Ms, 0)} / ${f(l.tenantMirror.p99Ms, 0)} / ${f(l.tenantMirror.maxMs, 0)} ms`,
      `logical replication ${f(l.logicalReplication.p50Ms, 0)} / ${f(l.logicalReplication.p99Ms, 0)} / ${f(l.logicalReplication.maxMs, 0)} ms`,
      `achieved ${f(l.tenantMirror.achievedRate, 0)} changes/s`,
    ]);
    rows.push([
      'Temporal per 1,000 changes under load',
      `${f(l.temporalPer1000Changes.billableActions, 1)} actions, ${f(l.temporalPer1000Changes.historyEvents, 1)} events`,
      '',
      Object.entries(l.temporalPer1000Changes.actionsByType).map(([k, v]) => `${k.replace(/^grpc_/, '')} ${v}`).join(', '),
    ]);
  }
  for (const m of r.memory ?? []) {
    rows.push([`worker peak RSS populating ${m.rows} wide rows (${f(m.tableMB, 0)} MB)`, `${f(m.peakRssMB, 0)} MB`, '', `idle before ${f(m.idleRssMB, 0)} MB, VmHWM since start ${f(m.hwmMB, 0)} MB; ${f(m.seconds, 1)} s`]);
  }
  const c = r.idleCost;
  if (c) {
    rows.push([
      'idle tenant per hour',
      `${f(c.perHour.billableActions, 0)} actions, ${f(c.perHour.historyEvents, 0)} events, ${f(c.perHour.frontendCalls, 0)} frontend calls`,
      `per worker (any number of tenants): ${f(c.perHour.workerFrontendCalls, 0)} frontend calls`,
      `window ${c.windowSeconds} s: ${Object.entries(c.actionsInWindow).map(([k, v]) => `${k.replace(/^grpc_/, '')} ${v}`).join(', ') || 'no actions'}; session boundary ${f(c.perSessionEvents, 0)} events`,
    ]);
  }
  const o = r.overhead;
  if (o?.rows) {
    for (const row of o.rows) {
      const settings = Object.entries(row.settings).map(([k, v]) => `${k}=${v}`).join(', ');
      const ing = row.ingestion;
      rows.push([
        `source write throughput (pgbench, 4 clients), ${row.commits} commits (${settings})`,
        `${f(row.tps.trigger, 0)} tps trigger, ${f(row.tps.logical, 0)} tps logical`,
        `${f(row.tps.plain, 0)} tps untracked`,
        `trigger costs ${f(row.cost.trigger * 100, 1)}%, logical ${f(row.cost.logical * 100, 1)}% (ingestion p50 ${f(ing.p50Ms, 0)} ms / max ${f(ing.maxMs, 0)} ms a cycle, ${f(ing.entriesPerSecond, 0)} entries/s, ${f(ing.behindAtEndMB, 1)} MB behind at the end)`,
      ]);
    }
  } else if (o) {
    rows.push(['source write throughput (pgbench, 4 clients)', `${f(o.tpsTracked, 0)} tps tracked`, `${f(o.tpsPlain, 0)} tps untracked`, `tracking costs ${f(o.cost * 100, 1)}%`]);
  }
  const m = r.many;
  if (m) {
    rows.push([
      `${m.tenants} tenants, one worker, ${m.seconds} s light writes`,
      `lag p50 ${f(m.lagP50Ms, 0)} / p99 ${f(m.lagP99Ms, 0)} ms`,
      '',
      `worker CPU ${f(m.workerCpuPercent, 0)}% of a core (${f(m.workerCpuPercent / m.tenants, 2)}% per tenant), RSS ${f(m.workerRssMB, 0)} MB (peak ${f(m.workerPeakRssMB, 0)}, ${f(m.workerPeakRssMB / m.tenants, 2)} MB per tenant), connections/tenant ${f(m.connectionsPerTenant.source, 2)} source + ${f(m.connectionsPerTenant.mirror, 2)} mirror; startup ${f(m.startupSeconds, 0)} s`,
    ]);
  }
  return rows;
}

export function renderTable(rows: string[][], markdown: boolean): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    markdown ? `| ${r.map((c) => c.replace(/^  /, '↳ ').replaceAll('|', '\\|')).join(' | ')} |` : r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const out = [line(rows[0]!)];
  out.push(markdown ? `|${rows[0]!.map(() => '---').join('|')}|` : widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join('\n');
}

export function renderTargets(t: Target[], markdown: boolean): string {
  const rows = [['target', 'goal', 'measured', 'met'], ...t.map((x) => [x.name, x.target, x.value, x.met === null ? '?' : x.met ? 'yes' : 'NO'])];
  return renderTable(rows, markdown);
}

export function performanceMarkdown(r: Results, notesPath: string, resultFile: string): string {
  const notes = existsSync(notesPath) ? readFileSync(notesPath, 'utf8').trim() : '';
  return ['## Performance', '', ...figuresMarkdown(r, resultFile), notes, ''].join('\n');
}

const README_START = '<!-- bench:start (written by npm run bench from its results; edit bench/report.ts, not this) -->';
const README_END = '<!-- bench:end -->';

/** The README's figures, between its two bench markers, from the same run as bench/PERFORMANCE.md. */
export function updateReadme(readmePath: string, r: Results, resultFile: string): void {
  const text = readFileSync(readmePath, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`${readmePath} has no bench markers`);
  const figures = figuresMarkdown(r, resultFile).join('\n').trimEnd();
  writeFileSync(readmePath, `${text.slice(0, start + README_START.length)}\n${figures}\n${text.slice(end)}`);
}

/** The run's header, figures and targets (and what failed), as Markdown lines. */
function figuresMarkdown(r: Results, resultFile: string): string[] {
  const m = r.machine;
  return [
    `Measured ${r.date.slice(0, 10)} with \`npm run bench\` (${r.options.rows.toLocaleString('en')} rows, median of ${r.options.runs} runs where repeated; ` +
      `${Math.round(r.durationSeconds / 60)} min) on ${m.nproc} vCPU (${m.cpu}), ${m.memoryGB} GB RAM, Node ${m.node}; ` +
      `source and mirror are two embedded PostgreSQL 15.18 servers on the same machine, Temporal is the CLI dev server. Raw figures: \`${resultFile}\`.`,
    '',
    renderTable(tableRows(r), true),
    '',
    '### Targets',
    '',
    renderTargets(r.targets, true),
    '',
    ...(Object.keys(r.errors).length ? ['### Measurements that failed in this run', '', ...Object.entries(r.errors).map(([k, v]) => `- ${k}: ${v}`), ''] : []),
  ];
}
