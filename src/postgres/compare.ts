/**
 * TableRangeReads for a PostgreSQL side (source snapshot or mirror snapshot): the statements of compare-sql.ts run
 * on that side's one connection. The `pg-hashtext` form is computed by the server (only digests and the keys of
 * small ranges come back); the `canonical` form streams the ranges' rows and hashes them here (src/core/row-digest.ts).
 */
import type { Readable } from 'node:stream';
import type { QueryResultRow } from 'pg';
import { decodeLine, readLines } from '../core/copy-text';
import { FailureType, MirrorError } from '../core/errors';
import { canonicalRowHash, DigestAccumulator } from '../core/row-digest';
import type { DigestForm, DigestOptions, KeyRange, KeyValues, RangeDigest, RowHash, TableRangeReads, TableSchema } from '../core/types';
import { countSql, digestsSql, rangeRowsCopySql, rowHashesSql, splitPointsSql, type PgCompareSide } from './compare-sql';

/** What the reads need from their side: statements and COPY streams on its one connection, one at a time. */
export interface PgCompareRunner {
  query<R extends QueryResultRow>(text: string, values: unknown[]): Promise<{ rows: R[] }>;
  /** A COPY TO STDOUT stream; the next statement waits until it has been read to its end. */
  copyOut(sql: string): Readable;
  /** Runs before a table is first read (the source locks it against TRUNCATE). */
  prepare(table: TableSchema): Promise<void>;
}

/** Ranges per statement: the bound parameters and the CASE tree stay small. */
const RANGES_PER_STATEMENT = 256;

export class PgTableReads implements TableRangeReads {
  readonly digestForms: readonly DigestForm[] = ['pg-hashtext', 'canonical'];
  private readonly prepared = new Set<string>();

  constructor(
    private readonly run: PgCompareRunner,
    private readonly side: (table: TableSchema) => PgCompareSide,
  ) {}

  private async ready(table: TableSchema): Promise<PgCompareSide> {
    if (!this.prepared.has(table.name)) {
      await this.run.prepare(table);
      this.prepared.add(table.name);
    }
    return this.side(table);
  }

  async splitPoints(table: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]> {
    if (table.primaryKey.length === 0 || parts < 2) return [];
    const side = await this.ready(table);
    const count = countSql(side, table, range);
    const rows = Number((await this.run.query<{ n: string }>(count.text, count.values)).rows[0]?.n ?? 0);
    if (rows < 2) return [];
    const step = Math.max(1, Math.ceil(rows / parts));
    const split = splitPointsSql(side, table, range, step, rows);
    const result = await this.run.query<Record<string, string>>(split.text, split.values);
    return result.rows.map((r) => table.primaryKey.map((_k, i) => r[`k${i}`] ?? null));
  }

  async rangeDigests(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]> {
    const side = await this.ready(table);
    const out: RangeDigest[] = [];
    for (const batch of batches(ranges)) {
      const digests: RangeDigest[] = batch.map(() => ({ rows: 0, sum: '0' }));
      if (opts.form === 'pg-hashtext') {
        const s = digestsSql(side, table, batch, opts.exclude ?? []);
        for (const r of (await this.withoutSort(() => this.run.query<{ b: number; rows: string; sum: string }>(s.text, s.values))).rows) {
          digests[r.b] = { rows: Number(r.rows), sum: r.sum };
        }
      } else {
        assertForm(opts.form, table);
        const acc = batch.map(() => new DigestAccumulator());
        const columnTypes = types(table);
        await this.eachRow(table, side, batch, opts, (b, fields) => acc[b]!.add(canonicalRowHash(columnTypes, fields)));
        acc.forEach((a, i) => (digests[i] = a.digest()));
      }
      out.push(...digests);
    }
    return out;
  }

  async rowHashes(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]> {
    if (table.primaryKey.length === 0) throw new MirrorError(FailureType.BadConfig, 'a table without a key has no row keys to compare', { table: table.name });
    const side = await this.ready(table);
    const out: RowHash[] = [];
    for (const batch of batches(ranges)) {
      if (opts.form === 'pg-hashtext') {
        const s = rowHashesSql(side, table, batch, opts.exclude ?? []);
        for (const r of (await this.run.query<Record<string, string>>(s.text, s.values)).rows) {
          out.push({ key: table.primaryKey.map((_k, i) => r[`k${i}`] ?? null), hash: String(r.h) });
        }
      } else {
        assertForm(opts.form, table);
        const keyIndexes = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k));
        const columnTypes = types(table);
        await this.eachRow(table, side, batch, opts, (_b, fields) => {
          out.push({ key: keyIndexes.map((i) => fields[i] ?? null), hash: canonicalRowHash(columnTypes, fields).toString() });
        });
      }
    }
    return out;
  }

  /**
   * The planner cannot tell how few ranges a bucket expression yields (it estimates one group per row), so it would
   * sort every row (spilling wide rows to disk) to aggregate a few hundred groups; hashing them is what it should do.
   */
  private async withoutSort<T>(fn: () => Promise<T>): Promise<T> {
    await this.run.query('SET LOCAL enable_sort = off', []);
    const result = await fn();
    await this.run.query('SET LOCAL enable_sort = on', []);
    return result;
  }

  /** Every row of the ranges as COPY text fields, with the index of its range. */
  private async eachRow(
    table: TableSchema,
    side: PgCompareSide,
    ranges: KeyRange[],
    opts: DigestOptions,
    onRow: (range: number, fields: (string | null)[]) => void,
  ): Promise<void> {
    const stream = this.run.copyOut(rangeRowsCopySql(side, table, ranges, opts.exclude ?? []));
    for await (const { line } of readLines(stream)) {
      const fields = decodeLine(line);
      onRow(Number(fields[0]), fields.slice(1));
    }
  }
}

function types(table: TableSchema) {
  return table.columns.map((c) => c.type);
}

function assertForm(form: DigestForm, table: TableSchema): void {
  if (form !== 'canonical') throw new MirrorError(FailureType.BadConfig, `unknown digest form ${JSON.stringify(form)}`, { table: table.name });
}

function batches(ranges: KeyRange[]): KeyRange[][] {
  const out: KeyRange[][] = [];
  for (let i = 0; i < ranges.length; i += RANGES_PER_STATEMENT) out.push(ranges.slice(i, i + RANGES_PER_STATEMENT));
  return out;
}
