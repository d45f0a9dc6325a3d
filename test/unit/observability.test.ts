/**
 * The pieces of metrics and logs that need no server: the exposition text (types, escaping, gauges computed at
 * scrape time), the metrics address setting, the log scrub and the Temporal SDK's logger on top of ours.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MirrorMetrics } from '../../src/metrics';
import { metricsAddress } from '../../src/metrics-server';
import { scrubLine, temporalLogger } from '../../src/logging';

describe('MirrorMetrics', () => {
  it('renders counters by operation, with HELP and TYPE, and skips zero increments', async () => {
    const m = new MirrorMetrics();
    m.rowsApplied('acme', 'orders', { inserts: 3, updates: 0, deletes: 2 });
    m.rowsApplied('acme', 'orders', { inserts: 1, updates: 4, deletes: 0 });
    m.rowsApplied('acme', 'lines', { inserts: 0, updates: 0, deletes: 7 });
    const text = await m.render();
    expect(text).toContain('# HELP tenant_mirror_rows_applied_total Rows written to mirror tables by change cycles, by operation (insert, update, delete).');
    expect(text).toContain('# TYPE tenant_mirror_rows_applied_total counter');
    expect(text).toContain('tenant_mirror_rows_applied_total{tenant="acme",table="orders",operation="insert"} 4');
    expect(text).toContain('tenant_mirror_rows_applied_total{tenant="acme",table="orders",operation="update"} 4');
    expect(text).toContain('tenant_mirror_rows_applied_total{tenant="acme",table="orders",operation="delete"} 2');
    expect(text).not.toContain('table="lines",operation="insert"');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('escapes label values (a table name is the source’s, whatever it holds)', async () => {
    const m = new MirrorMetrics();
    m.populated('acme', 'we"ird\\name\nx', { rows: 5, bytes: 50 });
    expect(await m.render()).toContain('tenant_mirror_population_rows_total{tenant="acme",table="we\\"ird\\\\name\\nx"} 5');
  });

  it('computes lag at scrape time and drops it when the session ends', async () => {
    let now = 12_500;
    const m = new MirrorMetrics(() => now);
    m.sessionStarted();
    m.caughtUp('acme', 'orders', 10_000);
    m.caughtUp('acme', 'orders', 9_000); // an older snapshot never moves it back
    expect(await m.value('tenant_mirror_lag_seconds', { tenant: 'acme', table: 'orders' })).toBe(2.5);
    now = 14_000;
    expect(await m.value('tenant_mirror_lag_seconds', { tenant: 'acme', table: 'orders' })).toBe(4);
    expect(await m.value('tenant_mirror_sessions_running')).toBe(1);
    m.sessionEnded('acme');
    expect(await m.value('tenant_mirror_lag_seconds', { tenant: 'acme', table: 'orders' })).toBeUndefined();
    expect(await m.render()).not.toMatch(/^tenant_mirror_lag_seconds\{/m);
    expect(await m.value('tenant_mirror_sessions_running')).toBe(0);
  });

  it('counts tables by state, every state present, and follows populations and wipes', async () => {
    const m = new MirrorMetrics();
    m.tableStates('acme', new Map([['a', 'mirroring'], ['b', 'pending'], ['c', 'skipped']] as const));
    m.tableState('acme', 'b', 'populating');
    expect(await m.value('tenant_mirror_tables', { tenant: 'acme', state: 'populating' })).toBe(1);
    expect(await m.value('tenant_mirror_tables', { tenant: 'acme', state: 'failed' })).toBe(0);
    m.tablesTo('acme', 'pending');
    expect(await m.value('tenant_mirror_tables', { tenant: 'acme', state: 'pending' })).toBe(3);
    expect(await m.value('tenant_mirror_tables', { tenant: 'acme', state: 'populating' })).toBe(0);
  });

  it('counts failures by tenant, type and operation', async () => {
    const m = new MirrorMetrics();
    m.failed('acme', 'AuthFailed', 'prepare');
    m.failed('acme', 'AuthFailed', 'prepare');
    expect(await m.value('tenant_mirror_failures_total', { tenant: 'acme', type: 'AuthFailed', operation: 'prepare' })).toBe(2);
    expect(await m.value('tenant_mirror_failures_total', { tenant: 'acme' })).toBeUndefined(); // exact label sets only
  });

  it('gives each instance its own registry', async () => {
    const a = new MirrorMetrics();
    const b = new MirrorMetrics();
    a.cycleDone('acme');
    expect(await a.value('tenant_mirror_sync_cycles_total', { tenant: 'acme' })).toBe(1);
    expect(await b.value('tenant_mirror_sync_cycles_total', { tenant: 'acme' })).toBeUndefined();
  });
});

describe('TENANT_MIRROR_METRICS', () => {
  it('defaults to 127.0.0.1:9464, reads host:port and [v6]:port, and turns off', () => {
    expect(metricsAddress({})).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(metricsAddress({ TENANT_MIRROR_METRICS: '0.0.0.0:9100' })).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(metricsAddress({ TENANT_MIRROR_METRICS: '[::1]:9464' })).toEqual({ host: '::1', port: 9464 });
    expect(metricsAddress({ TENANT_MIRROR_METRICS: ':9464' })).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(metricsAddress({ TENANT_MIRROR_METRICS: 'off' })).toBeNull();
  });

  it('refuses anything else with the setting named', () => {
    expect(() => metricsAddress({ TENANT_MIRROR_METRICS: '9464' })).toThrow(/TENANT_MIRROR_METRICS: not host:port or off: "9464"/);
    expect(() => metricsAddress({ TENANT_MIRROR_METRICS: 'h:99999' })).toThrow(/TENANT_MIRROR_METRICS/);
  });
});

describe('logs', () => {
  it('scrub credentials from URLs and connection-string pairs, keeping the line JSON', () => {
    const lines = [
      JSON.stringify({ msg: 'connect postgres://u:S3cret@h:5432/db failed' }),
      JSON.stringify({ msg: 'Server=h;User Id=sa;Password=S3cret;Database=x' }),
      JSON.stringify({ msg: 'conn password="S3 cret" host=h' }),
      JSON.stringify({ msg: 'pwd: S3cret, then' }),
    ];
    for (const line of lines) {
      const out = scrubLine(line);
      expect(out).not.toContain('S3');
      expect(() => JSON.parse(out)).not.toThrow();
    }
    expect(scrubLine(JSON.stringify({ msg: 'password authentication failed for user "x"' }))).toContain('password authentication failed');
  });

  it('route the SDK’s messages into our JSON lines, naming the tenant of one of our workflows', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const base = pino({ level: 'debug', hooks: { streamWrite: scrubLine } }, sink);
    const sdk = temporalLogger(base);
    sdk.warn('Activity failed', { workflowId: 'tenant-mirror:acme', activityType: 'prepareTenant', error: new Error('boom postgres://u:pw123@h/db') });
    sdk.info('Worker state changed', { state: 'RUNNING' });
    const [failed, state] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(failed).toMatchObject({ level: 40, source: 'temporal', tenantId: 'acme', activityType: 'prepareTenant', msg: 'Activity failed' });
    expect((failed!.err as { message: string }).message).toBe('boom postgres://u:***@h/db');
    expect(state).toMatchObject({ msg: 'Worker state changed', state: 'RUNNING' });
    expect(state!.tenantId).toBeUndefined();
  });
});

describe('the Grafana dashboard (docs/grafana-dashboard.json)', () => {
  it('is built on the metrics the worker serves, and shows every one of them', async () => {
    const dashboard = JSON.parse(readFileSync(join(process.cwd(), 'docs', 'grafana-dashboard.json'), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const used = new Set(dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/\btenant_mirror_[a-z_]+/g)].map((m) => m[0])));
    const served = new Set([...(await new MirrorMetrics().render()).matchAll(/^# TYPE (tenant_mirror_[a-z_]+) /gm)].map((m) => m[1]!));
    expect([...used].filter((name) => !served.has(name))).toEqual([]);
    expect([...served].filter((name) => !used.has(name))).toEqual([]);
  });
});
