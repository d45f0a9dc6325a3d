/**
 * `tenant-mirror verify` on real servers: a tenant mirrored PostgreSQL → PostgreSQL by the real worker, a 1M-row
 * table among its tables. Equal tables verify equal (exit 0); one changed value and one deleted row in the mirror of
 * the 1M-row table are named by key (exit 1); a writer busy at the source during the verify makes no difference
 * appear; the canonical digest form (what a SQL Server side computes) names the same keys as the server-side one;
 * a keyless table is compared whole.
 */
import '../support/quiet-runtime';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile, findTenant } from '../../src/config/load';
import { openMirror, openSource } from '../../src/adapters';
import { verifyTenant, type TableVerdict, type VerifyOptions } from '../../src/verify/verify';
import { startHarness, type Harness } from '../support/tenant-harness';
import { mirrorLsns } from '../support/scenario-tools';

const exec = promisify(execFile);
let h: Harness;

const CHANGED = 654_321;
const DELETED = 123_457;

beforeAll(async () => {
  h = await startHarness('verify');
  await h.sourceSql(`
    CREATE TABLE big (id int PRIMARY KEY, payload text, n bigint);
    INSERT INTO big SELECT g, repeat(md5(g::text), 3), g FROM generate_series(1, 1000000) g;
    CREATE TABLE lines (order_id int, code text, qty numeric(10,2), at timestamptz, PRIMARY KEY (order_id, code));
    INSERT INTO lines SELECT g / 10, 'c-' || (g % 10) || ' é', g * 0.5, timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, 20000) g;
    CREATE TABLE live (id int PRIMARY KEY, n bigint);
    INSERT INTO live SELECT g, 0 FROM generate_series(1, 50000) g;
    CREATE TABLE no_key (a int, b text);
    INSERT INTO no_key SELECT g % 7, 'x' FROM generate_series(1, 100) g;
  `);
  await h.startTenant();
  await h.waitConverged(
    [
      { name: 'big', orderBy: 'id' },
      { name: 'lines', orderBy: 'order_id, code' },
      { name: 'live', orderBy: 'id' },
    ],
    240_000,
  );
});
afterAll(async () => {
  await h?.stop();
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec('npx', ['tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, TENANT_MIRROR_CONFIG: h.configPath }, maxBuffer: 16 << 20 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

async function verify(opts: VerifyOptions): Promise<Map<string, TableVerdict>> {
  const tenant = findTenant(loadConfigFile(h.configPath), h.tenantId);
  const source = openSource(tenant);
  const mirror = openMirror(tenant);
  try {
    const report = await verifyTenant(tenant, { source, mirror }, opts);
    return new Map(report.tables.map((t) => [t.table, t]));
  } finally {
    await Promise.all([source.close(), mirror.close()]);
  }
}

function keysOf(v: TableVerdict | undefined): { key: (string | null)[]; kind: string }[] {
  if (v?.verdict !== 'differs') throw new Error(`expected a difference, got ${JSON.stringify(v)}`);
  return [...v.examples].sort((a, b) => String(a.key).localeCompare(String(b.key)));
}

describe('tenant-mirror verify', () => {
  it('finds every table of a mirrored tenant equal and exits 0', async () => {
    const { code, stdout } = await cli('verify', h.tenantId);
    expect(stdout).toMatch(/^big: equal: 1,000,000 rows/m);
    expect(stdout).toMatch(/^lines: equal: 20,000 rows/m);
    expect(stdout).toMatch(/^no_key: equal: 100 rows, compared whole \(no key\)/m);
    expect(stdout).toMatch(/tenant .*: 4 tables, 4 equal$/m);
    expect(code).toBe(0);
  });

  it('names the key of one changed value and of one deleted row in the 1M-row table, and exits 1', async () => {
    await h.mirrorSql(`UPDATE mirror.big SET n = -1 WHERE id = ${CHANGED}; DELETE FROM mirror.big WHERE id = ${DELETED}`);
    const verdicts = await verify({ tables: ['big'] });
    const big = verdicts.get('big')!;
    expect(big).toMatchObject({ verdict: 'differs', keys: 2, sourceRows: 1_000_000, mirrorRows: 999_999 });
    expect(keysOf(big)).toEqual([
      { key: [String(DELETED)], kind: 'missing' },
      { key: [String(CHANGED)], kind: 'value' },
    ]);

    const { code, stdout } = await cli('verify', h.tenantId, '--table', 'big');
    expect(stdout).toContain(`big: differs: 2 keys, e.g. `);
    expect(stdout).toContain(`id=${CHANGED} (value differs)`);
    expect(stdout).toContain(`id=${DELETED} (missing in the mirror)`);
    expect(code).toBe(1);

    const json = await cli('verify', h.tenantId, '--table', 'big', '--json');
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { tables: TableVerdict[] };
    expect(report.tables.map((t) => t.verdict)).toEqual(['differs']);
  });

  it('a writer busy at the source while verify runs makes no difference appear', async () => {
    const writer = new Client({ connectionString: h.sourceUrl });
    await writer.connect();
    let writes = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        // Keys away from the two the test changed in the mirror; inserts and deletes too.
        const id = 200_000 + Math.floor(Math.random() * 300_000);
        await writer.query('UPDATE big SET n = n + 1 WHERE id = $1', [id]);
        await writer.query('UPDATE live SET n = n + 1 WHERE id = $1', [1 + Math.floor(Math.random() * 50_000)]);
        await writer.query('INSERT INTO live VALUES ($1, 0) ON CONFLICT DO NOTHING', [100_000 + writes]);
        await writer.query('DELETE FROM live WHERE id = $1', [40_000 + writes]);
        writes++;
      }
    })();
    const before = await mirrorLsns(h.mirrorUrl, h.mirrorSchema);
    let verdicts: Map<string, TableVerdict>;
    try {
      verdicts = await verify({ tables: ['live', 'big'] });
    } finally {
      stop = true;
      await writing;
      await writer.end();
    }
    const after = await mirrorLsns(h.mirrorUrl, h.mirrorSchema);
    // The comparison ran against a moving source and a mirror that kept following it.
    expect(writes).toBeGreaterThan(20);
    expect(after.get('live')!).toBeGreaterThan(before.get('live')!);
    expect(verdicts.get('live')).toMatchObject({ verdict: 'equal' });
    expect(keysOf(verdicts.get('big'))).toEqual([
      { key: [String(DELETED)], kind: 'missing' },
      { key: [String(CHANGED)], kind: 'value' },
    ]);
  });

  it('the canonical digest form, which a SQL Server side computes, names the same keys as the server-side one', async () => {
    await h.mirrorSql(`
      UPDATE mirror.lines SET qty = qty + 1 WHERE order_id = 5 AND code = 'c-3 é';
      INSERT INTO mirror.lines VALUES (99999, 'only here', 1, now());
    `);
    const expected = [
      { key: ['5', 'c-3 é'], kind: 'value' },
      { key: ['99999', 'only here'], kind: 'extra' },
    ];
    expect(keysOf((await verify({ tables: ['lines'] })).get('lines'))).toEqual(expected);
    expect(keysOf((await verify({ tables: ['lines'], form: 'canonical' })).get('lines'))).toEqual(expected);
    const { stdout } = await cli('verify', h.tenantId, '--table', 'lines');
    expect(stdout).toContain('(order_id=5, code="c-3 é") (value differs)');
  });

  it('compares a keyless table whole', async () => {
    await h.mirrorSql(`INSERT INTO mirror.no_key VALUES (1, 'x')`);
    expect((await verify({ tables: ['no_key'] })).get('no_key')).toMatchObject({ verdict: 'differs', keys: null, sourceRows: 100, mirrorRows: 101 });
  });

  it('refuses a table the tenant does not mirror with exit 2, naming what it mirrors', async () => {
    const { code, stderr } = await cli('verify', h.tenantId, '--table', 'nosuch');
    expect(code).toBe(2);
    expect(stderr).toMatch(/mirrors no table "nosuch" \(it mirrors: big, lines, live, no_key\)/);
  });
});
