/**
 * The worker's own metrics, prefixed `tenant_mirror_`, in the Prometheus text exposition format (prom-client;
 * src/metrics-server.ts serves them on TENANT_MIRROR_METRICS together with the Temporal SDK's). The activities
 * record into one MirrorMetrics (injected through ActivityDeps, so a test reads the same registry the worker
 * serves). Each instance has its own prom-client Registry, never the global one: tests and the CLI create several.
 *
 * Labels are tenant ids, table names, operations and failure types: never row values. Tenant × table is the
 * widest product, which is fine for this product's scale (hundreds of tenants of a few dozen tables).
 * prom-client keys a series by `name:value,` pairs in label-name order; a table name may hold anything, but a tenant
 * id cannot hold a comma (src/config/schema.ts), so two tables' series never share a key.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { TableState } from '../contract/payloads';

type Labels = Record<string, string>;

export const METRIC_PREFIX = 'tenant_mirror_';

const TABLE_STATES: readonly TableState[] = ['pending', 'populating', 'mirroring', 'skipped', 'failed', 'paused'];

export class MirrorMetrics {
  private readonly registry = new Registry();

  private readonly rows = new Counter({
    name: `${METRIC_PREFIX}rows_applied_total`,
    help: 'Rows written to mirror tables by change cycles, by operation (insert, update, delete).',
    labelNames: ['tenant', 'table', 'operation'] as const,
    registers: [this.registry],
  });
  private readonly populationRows = new Counter({
    name: `${METRIC_PREFIX}population_rows_total`,
    help: 'Rows copied into shadow tables by populations and refreshes (committed chunks).',
    labelNames: ['tenant', 'table'] as const,
    registers: [this.registry],
  });
  private readonly populationBytes = new Counter({
    name: `${METRIC_PREFIX}population_bytes_total`,
    help: 'Bytes of COPY text copied by populations and refreshes (committed chunks).',
    labelNames: ['tenant', 'table'] as const,
    registers: [this.registry],
  });
  private readonly failures = new Counter({
    name: `${METRIC_PREFIX}failures_total`,
    help: 'Activity and table failures, by failure type (contract/failures.ts) and operation.',
    labelNames: ['tenant', 'type', 'operation'] as const,
    registers: [this.registry],
  });
  private readonly cycles = new Counter({
    name: `${METRIC_PREFIX}sync_cycles_total`,
    help: 'Sync cycles completed by sync sessions.',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  // The three gauges below are computed at scrape time from what the activities reported (collect callbacks).
  private readonly sessions: Gauge = new Gauge({
    name: `${METRIC_PREFIX}sessions_running`,
    help: 'Sync sessions running on this worker.',
    registers: [this.registry],
    collect: () => this.sessions.set(this.running),
  });
  private readonly lag: Gauge<'tenant' | 'table'> = new Gauge({
    name: `${METRIC_PREFIX}lag_seconds`,
    help: 'Seconds since the mirror table last held every change the source had (the start of the last cycle or population that brought it up to date); present while a sync session of the tenant runs on this worker.',
    labelNames: ['tenant', 'table'] as const,
    registers: [this.registry],
    collect: () => this.collectLag(),
  });
  private readonly tables: Gauge<'tenant' | 'state'> = new Gauge({
    name: `${METRIC_PREFIX}tables`,
    help: "Tables by state, as this worker's activities last saw them (pending, populating, mirroring, skipped, failed).",
    labelNames: ['tenant', 'state'] as const,
    registers: [this.registry],
    collect: () => this.collectTables(),
  });

  /** tenant → table → epoch ms it was last known up to date. */
  private readonly caughtUpAt = new Map<string, Map<string, number>>();
  /** tenant → table → state. */
  private readonly states = new Map<string, Map<string, TableState>>();
  private running = 0;

  /** `now` gives the scrape time the lag is measured at (a test passes a fixed clock). */
  constructor(private readonly now: () => number = Date.now) {}

  /** One table's applied change batch. */
  rowsApplied(tenant: string, table: string, counts: { inserts: number; updates: number; deletes: number }): void {
    for (const [operation, n] of [['insert', counts.inserts], ['update', counts.updates], ['delete', counts.deletes]] as const) {
      if (n > 0) this.rows.inc({ tenant, table, operation }, n);
    }
  }

  /** A committed population chunk: the rows and bytes it added. */
  populated(tenant: string, table: string, delta: { rows: number; bytes: number }): void {
    if (delta.rows > 0) this.populationRows.inc({ tenant, table }, delta.rows);
    if (delta.bytes > 0) this.populationBytes.inc({ tenant, table }, delta.bytes);
  }

  failed(tenant: string, type: string, operation: string): void {
    this.failures.inc({ tenant, type, operation });
  }

  cycleDone(tenant: string): void {
    this.cycles.inc({ tenant });
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

  /** A value as the next scrape would report it (exact label set), or undefined when there is no such series. */
  async value(name: string, labels: Labels = {}): Promise<number | undefined> {
    const series = await this.series(name);
    return series.find((s) => sameLabels(s.labels, labels))?.value;
  }

  /** The sum of a metric over every series whose labels include `match`. */
  async sum(name: string, match: Labels = {}): Promise<number> {
    const series = await this.series(name);
    return series.filter((s) => includesLabels(s.labels, match)).reduce((total, s) => total + s.value, 0);
  }

  /** The exposition text of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  private async series(name: string): Promise<{ labels: Partial<Record<string, string | number>>; value: number }[]> {
    const metric = this.registry.getSingleMetric(name);
    return metric ? (await metric.get()).values : [];
  }

  private collectLag(): void {
    const now = this.now();
    this.lag.reset();
    for (const [tenant, tables] of this.caughtUpAt) {
      for (const [table, at] of tables) this.lag.set({ tenant, table }, Math.max(0, (now - at) / 1000));
    }
  }

  /** Every state of every known tenant, zeros included, so a panel shows a state going to none. */
  private collectTables(): void {
    this.tables.reset();
    for (const [tenant, tables] of this.states) {
      const counts = new Map<TableState, number>(TABLE_STATES.map((s) => [s, 0]));
      for (const state of tables.values()) counts.set(state, (counts.get(state) ?? 0) + 1);
      for (const [state, n] of counts) this.tables.set({ tenant, state }, n);
    }
  }
}

function includesLabels(labels: Partial<Record<string, string | number>>, match: Labels): boolean {
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

function sameLabels(labels: Partial<Record<string, string | number>>, wanted: Labels): boolean {
  return Object.keys(labels).length === Object.keys(wanted).length && includesLabels(labels, wanted);
}
