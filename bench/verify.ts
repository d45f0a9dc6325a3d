/**
 * How long `tenant-mirror verify` takes on a 1M-row table (npm run bench:verify): the table is mirrored by the
 * real worker, the tenant stopped, then verify runs on the equal table, and again after one value is changed in the
 * mirror (the figure the issue asks for: it must name that key within seconds), each in both digest forms (the
 * server-side one PostgreSQL → PostgreSQL uses, and the canonical one a SQL Server side would use).
 * VERIFY_ROWS changes the size. Figures are printed and written to bench/results/verify-latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findTenant, loadConfigFile } from '../src/config/load';
import { openMirror, openSource } from '../src/adapters';
import { verifyTenant, type VerifyOptions, type VerifyReport } from '../src/verify/verify';
import type { DigestForm } from '../src/core/types';
import { PROJECT_ROOT } from '../dev/paths';
import { q, settle, startEnv } from './env';
import { startTenant, startWorkerProcess, TenantsFile, terminateTenant, waitPopulated } from './tenants';

const ROWS = Number(process.env.VERIFY_ROWS ?? 1_000_000);
const TENANT = 'verify-bench';
const SCHEMA = 'mirror';
const CHANGED = Math.floor(ROWS * 0.654321);

interface Run {
  case: string;
  form: DigestForm;
  seconds: number;
  verdict: string;
  keys: string[];
}

async function main(): Promise<void> {
  const log = (line: string): void => console.log(line);
  const env = await startEnv(log);
  try {
    const sourceUrl = await env.source.createDatabase('verify_src');
    const mirrorUrl = await env.mirror.createDatabase('verify_mirror');
    await q(sourceUrl, `CREATE TABLE big (id int PRIMARY KEY, payload text, n bigint, at timestamptz)`);
    await q(sourceUrl, `INSERT INTO big SELECT g, repeat(md5(g::text), 3), g, timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, $1::int) g`, [ROWS]);
    log(`source: big, ${ROWS.toLocaleString('en-US')} rows`);

    const file = new TenantsFile('verify');
    file.set({ id: TENANT, source: { kind: 'postgres', url: sourceUrl }, mirror: { kind: 'postgres', url: mirrorUrl, schema: SCHEMA }, pollInterval: '200ms' });
    const worker = await startWorkerProcess(env, file, 'bench-verify', 'verify-worker');
    try {
      await startTenant(env.client, TENANT, worker.taskQueue);
      await waitPopulated(mirrorUrl, SCHEMA, ['big'], 600_000);
      log('mirror populated');
    } finally {
      await terminateTenant(env.client, TENANT);
      await worker.stop();
    }
    await settle(env);

    const tenant = findTenant(loadConfigFile(file.path), TENANT);
    const runs: Run[] = [];
    const timed = async (name: string, opts: VerifyOptions): Promise<void> => {
      const source = openSource(tenant);
      const mirror = openMirror(tenant);
      try {
        const started = process.hrtime.bigint();
        const report: VerifyReport = await verifyTenant(tenant, { source, mirror }, { tables: ['big'], ...opts });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const big = report.tables[0]!;
        const keys = big.verdict === 'differs' ? big.examples.map((e) => `${e.key.join(',')} (${e.kind})`) : [];
        runs.push({ case: name, form: opts.form ?? 'pg-hashtext', seconds, verdict: big.verdict, keys });
        log(`${name.padEnd(22)} ${(opts.form ?? 'pg-hashtext').padEnd(11)} ${seconds.toFixed(2).padStart(6)} s  ${big.verdict}${keys.length ? `: ${keys.join(', ')}` : ''}`);
      } finally {
        await Promise.all([source.close(), mirror.close()]);
      }
    };
    await timed('equal', { form: 'pg-hashtext' });
    await timed('equal', { form: 'canonical' });
    await q(mirrorUrl, `UPDATE ${SCHEMA}.big SET n = -1 WHERE id = $1`, [CHANGED]);
    await timed('one changed value', { form: 'pg-hashtext' });
    await timed('one changed value', { form: 'canonical' });

    const dir = join(PROJECT_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'verify-latest.json'), JSON.stringify({ rows: ROWS, changedKey: CHANGED, at: new Date().toISOString(), runs }, null, 2) + '\n');
  } finally {
    await env.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
