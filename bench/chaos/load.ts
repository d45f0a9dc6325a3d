/**
 * The chaos suite's write load and its probe. A writer commits `rate` transactions a second at the source
 * (update an account, insert an order, now and then delete one, and insert a probe row numbered in commit order);
 * it survives the source going away (reconnects and goes on). The probe watcher reads the mirror's highest probe
 * number every 100 ms: a fault's recovery time is how long after the fault the first probe committed after it
 * takes to arrive.
 */
import { Client as PgClient } from 'pg';
import { sleep } from '../env';

export const CHAOS_TABLES = ['accounts', 'orders', 'big', 'probe'] as const;

export function schemaSql(accounts: number, bigRows: number): string {
  return `
    CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO accounts SELECT g, 0, 'account ' || g, now() FROM generate_series(1, ${accounts}) g;
    CREATE TABLE orders (id bigserial PRIMARY KEY, account_id bigint NOT NULL, amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO orders (account_id, amount) SELECT 1 + g % ${accounts}, g % 997 FROM generate_series(1, ${accounts}) g;
    CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL);
    INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, ${bigRows}) g;
    CREATE TABLE probe (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp());`;
}

export class Writer {
  private seq = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  /** When probe seq committed (performance.now()), at index seq - 1: increasing. */
  private readonly committedAt: number[] = [];
  errors = 0;

  constructor(
    private readonly url: string,
    private readonly rate: number,
    private readonly accounts: number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** The first probe number that commits at or after `t` (performance.now()); waits for it. */
  async firstProbeAfter(t: number, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      for (let i = this.committedAt.length - 1; i >= 0 && this.committedAt[i]! >= t; i--) if (i === 0 || this.committedAt[i - 1]! < t) return i + 1;
      if (performance.now() > deadline) throw new Error('no transaction committed at the source after the fault');
      await sleep(20);
    }
  }

  private async run(): Promise<void> {
    let client: PgClient | null = null;
    const period = 1000 / this.rate;
    let next = performance.now();
    while (this.running) {
      try {
        if (!client) {
          client = new PgClient({ connectionString: this.url, connectionTimeoutMillis: 2_000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        const seq = this.seq + 1;
        const account = 1 + Math.floor(Math.random() * this.accounts);
        const removeOld = seq % 10 === 0 ? `DELETE FROM orders WHERE id = (SELECT min(id) FROM orders);` : '';
        await client.query(
          `BEGIN; UPDATE accounts SET balance = balance + 1, updated_at = now() WHERE id = ${account};
           INSERT INTO orders (account_id, amount) VALUES (${account}, ${seq % 500}); ${removeOld}
           INSERT INTO probe (seq) VALUES (${seq}); COMMIT;`,
        );
        this.seq = seq;
        this.committedAt.push(performance.now());
      } catch {
        // The source went away (crashed, connections cut): whatever was in flight did not commit. Reconnect.
        this.errors += 1;
        await client?.end().catch(() => undefined);
        client = null;
        await sleep(200);
      }
      next += period;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      else next = performance.now();
    }
    await client?.end().catch(() => undefined);
  }
}

/** Follows the mirror's highest probe number, reconnecting through mirror outages. */
export class ProbeWatcher {
  private highest = 0;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly url: string,
    private readonly table: string,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Resolves with the moment (performance.now()) the mirror first held probe `seq`. */
  async arrival(seq: number, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.highest < seq) {
      if (performance.now() > deadline) throw new Error(`probe ${seq} did not reach the mirror within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(25);
    }
    return performance.now();
  }

  private async run(): Promise<void> {
    let client: PgClient | null = null;
    while (this.running) {
      try {
        if (!client) {
          client = new PgClient({ connectionString: this.url, connectionTimeoutMillis: 2_000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        const { rows } = await client.query<{ s: string | null }>(`SELECT max(seq)::text AS s FROM ${this.table}`);
        this.highest = Math.max(this.highest, Number(rows[0]?.s ?? 0));
      } catch {
        await client?.end().catch(() => undefined);
        client = null;
      }
      await sleep(100);
    }
    await client?.end().catch(() => undefined);
  }
}
