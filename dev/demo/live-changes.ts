/**
 * The demo's live traffic: a loop of small transactions at the source (inserts, updates, deletes across the CRM
 * tables) at a steady rate, as a busy CRM would make. It only counts what really changed a row, so the figures
 * it prints are the changes the mirror has to carry.
 */
import type { Client } from 'pg';
import { quotePg } from '../../src/core/identifiers';
import { Rng, TABLE_DEFS, generateRow, type CrmTableName, type RowCounts } from './crm';

export interface LiveChangeStats {
  inserts: number;
  updates: number;
  deletes: number;
}

export interface LiveChangesOptions {
  /** Opens a connection to the source database (the loop uses one). */
  connect: () => Promise<Client>;
  counts: RowCounts;
  seed: number;
  /** Target row changes per second. */
  perSecond: number;
  /** Called once when the loop stops on an error (the source went away, ...). */
  onError?: (err: unknown) => void;
}

type Kind = keyof LiveChangeStats;

interface Op {
  kind: Kind;
  weight: number;
  run(db: Client, rng: Rng): Promise<number>;
}

const TICK_MS = 100;
const MAX_TX_STATEMENTS = 8;

export class LiveChanges {
  readonly stats: LiveChangeStats = { inserts: 0, updates: 0, deletes: 0 };
  private readonly nextId: Partial<Record<CrmTableName, number>> = {};
  private readonly ops: Op[];
  private readonly totalWeight: number;
  private liveLine = 0;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private db: Client | null = null;

  constructor(private readonly opts: LiveChangesOptions) {
    for (const table of ['users', 'accounts', 'contacts', 'leads', 'products', 'opportunities', 'quotes', 'invoices', 'activities', 'notes'] as const) {
      this.nextId[table] = opts.counts[table] + 1;
    }
    this.ops = this.buildOps();
    this.totalWeight = this.ops.reduce((sum, op) => sum + op.weight, 0);
  }

  get total(): number {
    return this.stats.inserts + this.stats.updates + this.stats.deletes;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run().catch((err: unknown) => {
      if (!this.stopping) this.opts.onError?.(err);
    });
  }

  /** Stops after the transaction in flight and closes the connection. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    await this.db?.end().catch(() => undefined);
    this.db = null;
  }

  private async run(): Promise<void> {
    this.db = await this.opts.connect();
    const db = this.db;
    const rng = new Rng(`tenant-mirror-demo-live:${this.opts.seed}`);
    const started = Date.now();
    let attempted = 0;
    while (!this.stopping) {
      // Catch up to the target rate since the start, so a slow tick does not lower the average.
      const due = Math.floor(((Date.now() - started) / 1000) * this.opts.perSecond) - attempted;
      let left = Math.min(due, this.opts.perSecond);
      while (left > 0 && !this.stopping) {
        const statements = Math.min(left, rng.int(1, MAX_TX_STATEMENTS));
        await db.query('BEGIN');
        try {
          for (let i = 0; i < statements; i++) {
            const op = this.pick(rng);
            this.stats[op.kind] += await op.run(db, rng);
          }
          await db.query('COMMIT');
        } catch (err) {
          await db.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        left -= statements;
        attempted += statements;
      }
      if (due > this.opts.perSecond) attempted += due - this.opts.perSecond; // far behind: skip, do not burst
      await sleep(TICK_MS);
    }
  }

  private pick(rng: Rng): Op {
    let r = rng.next() * this.totalWeight;
    for (const op of this.ops) {
      r -= op.weight;
      if (r < 0) return op;
    }
    return this.ops[this.ops.length - 1] as Op;
  }

  private existing(table: CrmTableName, rng: Rng): number {
    return rng.int(1, (this.nextId[table] ?? this.opts.counts[table] + 1) - 1);
  }

  private buildOps(): Op[] {
    const counts = this.opts.counts;
    const now = (): string => new Date().toISOString();
    const insert = (table: CrmTableName, weight: number, adjust?: (row: (string | null)[], rng: Rng) => void): Op => ({
      kind: 'inserts',
      weight,
      run: async (db, rng) => {
        const id = this.nextId[table];
        const row = generateRow(table, id ?? rng.int(1, counts[table]), rng, counts, now());
        if (id !== undefined) this.nextId[table] = id + 1;
        adjust?.(row, rng);
        const columns = TABLE_DEFS[table].columns;
        const params = columns.map((_, i) => `$${i + 1}`).join(', ');
        const result = await db.query(`INSERT INTO ${quotePg(table)} (${columns.map(quotePg).join(', ')}) VALUES (${params})`, row);
        return result.rowCount ?? 0;
      },
    });
    const update = (table: CrmTableName, weight: number, set: string, values: (rng: Rng) => unknown[]): Op => ({
      kind: 'updates',
      weight,
      run: async (db, rng) => {
        const args = values(rng);
        const result = await db.query(`UPDATE ${quotePg(table)} SET ${set}, updated_at = now() WHERE id = $${args.length + 1}`, [...args, this.existing(table, rng)]);
        return result.rowCount ?? 0;
      },
    });
    const remove = (table: CrmTableName, weight: number): Op => ({
      kind: 'deletes',
      weight,
      run: async (db, rng) => (await db.query(`DELETE FROM ${quotePg(table)} WHERE id = $1`, [this.existing(table, rng)])).rowCount ?? 0,
    });
    return [
      insert('activities', 5),
      insert('notes', 2),
      insert('contacts', 1),
      insert('leads', 1),
      insert('audit_log', 1),
      insert('quote_lines', 1, (row, rng) => {
        // A new line on an existing quote, numbered above any generated line.
        row[0] = String(rng.int(1, counts.quotes));
        row[1] = String(10_000 + ++this.liveLine);
      }),
      update('accounts', 2, 'annual_revenue = $1, tags = $2', (rng) => [rng.money(50_000, 500_000_000), `{${rng.pick(['vip', 'renewal', 'churn-risk'])}}`]),
      update('opportunities', 3, 'stage = $1, amount = $2, probability = $3', (rng) => [
        rng.pick(['qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost']),
        rng.money(1_000, 2_000_000),
        rng.int(0, 100),
      ]),
      update('contacts', 2, 'phone = $1, title = $2', (rng) => [`+49 30 ${rng.int(1000000, 9999999)}`, rng.chance(0.2) ? null : 'Head of Purchasing']),
      update('activities', 3, 'done = true, duration_minutes = $1', (rng) => [rng.int(5, 240)]),
      update('invoices', 1, 'paid = true, metadata = $1', (rng) => [JSON.stringify({ paidVia: rng.pick(['sepa', 'card', 'wire']) })]),
      update('products', 0.5, 'list_price = $1', (rng) => [rng.money(5, 25_000)]),
      {
        kind: 'updates',
        weight: 1,
        run: async (db, rng) => {
          const quantity = rng.int(1, 50);
          const result = await db.query(
            `UPDATE quote_lines SET quantity = $1::integer, line_total = $1::integer * unit_price, updated_at = now() WHERE quote_id = $2 AND line_no = $3`,
            [quantity, rng.int(1, counts.quotes), rng.int(1, Math.ceil(counts.quote_lines / counts.quotes))],
          );
          return result.rowCount ?? 0;
        },
      },
      {
        kind: 'updates',
        weight: 0.5,
        run: async (db, rng) => {
          const result = await db.query(
            `UPDATE price_book_entries SET unit_price = $1, updated_at = now() WHERE price_book_id = $2 AND product_id = $3`,
            [rng.money(5, 25_000), rng.int(1, counts.price_books), rng.int(1, counts.products)],
          );
          return result.rowCount ?? 0;
        },
      },
      remove('activities', 1.5),
      remove('notes', 1),
      remove('leads', 0.5),
      remove('contacts', 0.3),
      {
        kind: 'deletes',
        weight: 0.5,
        run: async (db, rng) => {
          const result = await db.query(`DELETE FROM quote_lines WHERE quote_id = $1 AND line_no = $2`, [
            rng.int(1, counts.quotes),
            rng.int(1, Math.ceil(counts.quote_lines / counts.quotes)),
          ]);
          return result.rowCount ?? 0;
        },
      },
    ];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
