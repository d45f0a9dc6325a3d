/**
 * The worker's own metrics, prefixed `tenant_mirror_`, rendered in the Prometheus text exposition format
 * (src/metrics-server.ts serves them on TENANT_MIRROR_METRICS together with the Temporal SDK's). The activities
 * record into one MirrorMetrics (injected through ActivityDeps, so a test reads the same registry the worker
 * serves).
 *
 * prom-client is the usual Node library for this; it is not a dependency of the project, and what is needed here
 * — counters and gauges with labels, one text rendering — is a few dozen lines (below, `Family`). The public
 * methods of MirrorMetrics are what the activities use, so moving to prom-client would change this file only.
 *
 * Labels are tenant ids, table names, operations and failure types: never row values. Tenant × table is the
 * widest product, which is fine for this product's scale (hundreds of tenants of a few dozen tables).
 */
import type { TableState } from '../contract/payloads';

type Labels = Record<string, string>;

/** One metric name with its HELP, TYPE and a value per label set. */
class Family {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly type: 'counter' | 'gauge',
  ) {}

  add(labels: Labels, by: number): void {
    const key = seriesKey(labels);
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels, value: by });
  }

  set(labels: Labels, value: number): void {
    this.series.set(seriesKey(labels), { labels, value });
  }

  /** Drops the series whose labels include all of `match`. */
  remove(match: Labels): void {
    for (const [key, s] of this.series) if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) this.series.delete(key);
  }

  clear(): void {
    this.series.clear();
  }

  sum(match: Labels): number {
    let total = 0;
    for (const s of this.series.values()) if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
    return total;
  }

  get(labels: Labels): number | undefined {
    return this.series.get(seriesKey(labels))?.value;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${this.name} ${this.type}`];
    for (const s of this.series.values()) lines.push(`${this.name}${renderLabels(s.labels)} ${formatValue(s.value)}`);
    return lines.join('\n');
  }
}

function seriesKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function renderLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

export const METRIC_PREFIX = 'tenant_mirror_';

const TABLE_STATES: readonly TableState[] = ['pending', 'populating', 'mirroring', 'skipped', 'failed', 'paused'];

export class MirrorMetrics {
  private readonly rows = new Family(`${METRIC_PREFIX}rows_applied_total`, 'Rows written to mirror tables by change cycles, by operation (insert, update, delete).', 'counter');
  private readonly populationRows = new Family(`${METRIC_PREFIX}population_rows_total`, 'Rows copied into shadow tables by populations and refreshes (committed chunks).', 'counter');
  private readonly populationBytes = new Family(`${METRIC_PREFIX}population_bytes_total`, 'Bytes of COPY text copied by populations and refreshes (committed chunks).', 'counter');
  private readonly failures = new Family(`${METRIC_PREFIX}failures_total`, 'Activity and table failures, by failure type (contract/failures.ts) and operation.', 'counter');
  private readonly cycles = new Family(`${METRIC_PREFIX}sync_cycles_total`, 'Sync cycles completed by sync sessions.', 'counter');
  private readonly sessions = new Family(`${METRIC_PREFIX}sessions_running`, 'Sync sessions running on this worker.', 'gauge');
  private readonly lag = new Family(
    `${METRIC_PREFIX}lag_seconds`,
    'Seconds since the mirror table last held every change the source had (the start of the last cycle or population that brought it up to date); present while a sync session of the tenant runs on this worker.',
    'gauge',
  );
  private readonly tables = new Family(`${METRIC_PREFIX}tables`, "Tables by state, as this worker's activities last saw them (pending, populating, mirroring, skipped, failed).", 'gauge');

  /** tenant → table → epoch ms it was last known up to date. */
  private readonly caughtUpAt = new Map<string, Map<string, number>>();
  /** tenant → table → state. */
  private readonly states = new Map<string, Map<string, TableState>>();
  private running = 0;

  /** One table's applied change batch. */
  rowsApplied(tenant: string, table: string, counts: { inserts: number; updates: number; deletes: number }): void {
    for (const [operation, n] of [['insert', counts.inserts], ['update', counts.updates], ['delete', counts.deletes]] as const) {
      if (n > 0) this.rows.add({ tenant, table, operation }, n);
    }
  }

  /** A committed population chunk: the rows and bytes it added. */
  populated(tenant: string, table: string, delta: { rows: number; bytes: number }): void {
    if (delta.rows > 0) this.populationRows.add({ tenant, table }, delta.rows);
    if (delta.bytes > 0) this.populationBytes.add({ tenant, table }, delta.bytes);
  }

  failed(tenant: string, type: string, operation: string): void {
    this.failures.add({ tenant, type, operation }, 1);
  }

  cycleDone(tenant: string): void {
    this.cycles.add({ tenant }, 1);
  }

  sessionStarted(): void {
    this.running += 1;
  }

  /** The session is over here: its lag series go (another worker, or the next session, reports the tenant). */
  sessionEnded(tenant: string): void {
    this.running = Math.max(0, this.running - 1);
    this.caughtUpAt.delete(tenant);
  }

  /** The table held everything the source had at `atMs` (a snapshot's time). */
  caughtUp(tenant: string, table: string, atMs: number): void {
    let tables = this.caughtUpAt.get(tenant);
    if (!tables) this.caughtUpAt.set(tenant, (tables = new Map()));
    tables.set(table, Math.max(atMs, tables.get(table) ?? 0));
  }

  /** Every table of a tenant and its state (a bootstrap's plan): replaces what was known. */
  tableStates(tenant: string, states: Map<string, TableState>): void {
    this.states.set(tenant, new Map(states));
  }

  tableState(tenant: string, table: string, state: TableState): void {
    let tables = this.states.get(tenant);
    if (!tables) this.states.set(tenant, (tables = new Map()));
    tables.set(table, state);
  }

  /** Every known table of the tenant (or those named) goes to `state`. */
  tablesTo(tenant: string, state: TableState, tables?: string[]): void {
    const known = this.states.get(tenant);
    for (const table of tables ?? [...(known?.keys() ?? [])]) this.tableState(tenant, table, state);
  }

  /** A value as the next scrape would report it (for tests). */
  value(name: string, labels: Labels = {}, now = Date.now()): number | undefined {
    this.refresh(now);
    return this.families().find((f) => f.name === name)?.get(labels);
  }

  /** The sum of a metric over every series whose labels include `match`. */
  sum(name: string, match: Labels = {}, now = Date.now()): number {
    this.refresh(now);
    return this.families().find((f) => f.name === name)?.sum(match) ?? 0;
  }

  /** The exposition text of every metric. */
  render(now = Date.now()): string {
    this.refresh(now);
    return this.families().map((f) => f.render()).join('\n') + '\n';
  }

  private families(): Family[] {
    return [this.rows, this.populationRows, this.populationBytes, this.failures, this.cycles, this.sessions, this.lag, this.tables];
  }

  /** The gauges computed at scrape time. */
  private refresh(now: number): void {
    this.sessions.set({}, this.running);
    this.lag.clear();
    for (const [tenant, tables] of this.caughtUpAt) {
      for (const [table, at] of tables) this.lag.set({ tenant, table }, Math.max(0, (now - at) / 1000));
    }
    this.tables.clear();
    for (const [tenant, tables] of this.states) {
      const counts = new Map<TableState, number>(TABLE_STATES.map((s) => [s, 0]));
      for (const state of tables.values()) counts.set(state, (counts.get(state) ?? 0) + 1);
      for (const [state, n] of counts) this.tables.set({ tenant, state }, n);
    }
  }
}
