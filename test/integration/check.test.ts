/**
 * `tenant-mirror check` on real PostgreSQL servers, through the CLI: a source login that owns one table but has
 * only SELECT on another (a blocker naming that table), a partner's own table in the mirror schema holding a
 * source table's name (a blocker), a keyless table refreshed and a reserved name skipped, each with its reason;
 * nothing changed on either side; the mirror's own tables told from the partner's; a mirror that cannot be reached
 * is exit 2.
 */
import '../support/quiet-runtime';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgPair, type PgPair } from '../support/pg';
import { freePort } from '../../dev/embedded-postgres';
import type { TenantConfigInput } from '../../src/config/schema';
import { findTenant, loadConfigFile } from '../../src/config/load';
import { openMirror } from '../../src/adapters';

const exec = promisify(execFile);
const ROLE = 'tm_check';
const PASSWORD = 'check-pw-7f3a';
let pg: PgPair;
let dir: string;
let sourceUrl: string;
let mirrorUrl: string;

beforeAll(async () => {
  pg = await startPgPair('check');
  await pg.source.createDatabase('app');
  mirrorUrl = await pg.mirror.createDatabase('partner');
  await pg.source.sql(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'; GRANT CREATE ON DATABASE app TO ${ROLE}`);
  await pg.source.sql(
    `CREATE TABLE contacts (id int PRIMARY KEY, name text);
     CREATE TABLE audit (id int PRIMARY KEY, what text);
     CREATE TABLE events (at timestamptz, what text);
     CREATE TABLE "_mirror_state" (id int PRIMARY KEY);
     ALTER TABLE contacts OWNER TO ${ROLE};
     ALTER TABLE events OWNER TO ${ROLE};
     GRANT SELECT ON audit, "_mirror_state" TO ${ROLE};`,
    'app',
  );
  // The partner keeps a table of its own called contacts in the schema the tenant mirrors into.
  await pg.mirror.sql(`CREATE SCHEMA mirror; CREATE TABLE mirror.contacts (id int, note text)`, 'partner');
  const url = new URL(pg.source.url('app'));
  url.username = ROLE;
  url.password = PASSWORD;
  sourceUrl = url.toString();
  dir = join(process.cwd(), '.data', 'test', 'check');
  mkdirSync(dir, { recursive: true });
});
afterAll(async () => {
  await pg?.stop();
});

function writeConfig(id: string, mirror: string): string {
  const tenant: TenantConfigInput = {
    id,
    source: { kind: 'postgres', url: sourceUrl },
    mirror: { kind: 'postgres', url: mirror, schema: 'mirror' },
  };
  const path = join(dir, `${id}.yaml`);
  writeFileSync(path, stringify({ tenants: [tenant] }));
  return path;
}

function cli(configPath: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec('npx', ['tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, TENANT_MIRROR_CONFIG: configPath } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

/** Every relation of both databases, to show that check created nothing. */
async function relations(url: string): Promise<string[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1`,
    );
    return rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

describe('tenant-mirror check', () => {
  it('names each blocker and each table with how it will be mirrored, changes nothing, and exits 1', async () => {
    const before = [await relations(pg.source.url('app')), await relations(mirrorUrl)];
    const { code, stdout } = await cli(writeConfig('check-a', mirrorUrl), 'check', 'check-a');
    const line = (subject: string): string => stdout.split('\n').find((l) => l.includes(`  ${subject}: `)) ?? `(no line for ${subject} in:\n${stdout})`;

    expect(line('source')).toMatch(/^ok +source: PostgreSQL .*role "tm_check"/);
    expect(line('table audit')).toMatch(/^blocker +table audit: .*cannot install change tracking: role "tm_check" has no TRIGGER privilege on .*audit/);
    expect(line('table contacts')).toMatch(/^blocker +table contacts: mirrored with change tracking; .*already exists in the mirror schema and was not created by tenant-mirror/);
    expect(line('table events')).toMatch(/^ok +table events: refreshed whole every 1 hour \(no primary key/);
    expect(line('table _mirror_state')).toMatch(/^warn +table _mirror_state: skipped: table name "_mirror_state" is reserved by the mirror/);
    expect(stdout).toMatch(/tenant check-a: 2 blockers, 1 warning: fix the blockers before starting it$/m);
    expect(code).toBe(1);
    expect([await relations(pg.source.url('app')), await relations(mirrorUrl)]).toEqual(before);
  });

  it('reports in JSON with a level per finding', async () => {
    const { code, stdout } = await cli(writeConfig('check-b', mirrorUrl), 'check', 'check-b', '--json');
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as { findings: { level: string; subject: string }[] };
    const blockers = report.findings.filter((f) => f.level === 'blocker').map((f) => f.subject);
    expect(blockers.sort()).toEqual(['table audit', 'table contacts']);
  });

  it("counts the mirror's own tables (state, fence, log) as ours, and a partner's other table as the partner's", async () => {
    const configPath = writeConfig('check-d', mirrorUrl);
    const mirror = openMirror(findTenant(loadConfigFile(configPath), 'check-d'));
    try {
      await mirror.ensureState();
    } finally {
      await mirror.close();
    }
    await pg.mirror.sql(`CREATE TABLE mirror.partner_notes (id int)`, 'partner');
    const { stdout } = await cli(configPath, 'check', 'check-d');
    expect(stdout).toMatch(/^ok +mirror: 1 table\(s\) of the partner's own in schema "mirror" are left alone: "partner_notes"$/m);
  });

  it('a mirror that cannot be reached is exit 2, naming the side', async () => {
    const { code, stdout } = await cli(writeConfig('check-c', `postgres://nobody:x@127.0.0.1:${await freePort()}/partner`), 'check', 'check-c');
    expect(stdout).toMatch(/^error +mirror: /m);
    expect(code).toBe(2);
  });
});
