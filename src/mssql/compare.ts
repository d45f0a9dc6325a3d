/**
 * TableRangeReads for a SQL Server side (source snapshot or mirror snapshot): one statement per range
 * (compare-sql.ts), rows read as strings and converted as the row stream converts them (values.ts), hashed here in
 * the `canonical` form (src/core/row-digest.ts) so that they agree with a PostgreSQL side.
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { decodeLine, encodeLine, readLines } from '../core/copy-text';
import { FailureType, MirrorError } from '../core/errors';
import { canonicalRowHash, DigestAccumulator } from '../core/row-digest';
import type { DigestForm, DigestOptions, KeyRange, KeyValues, RangeDigest, RowHash, TableRangeReads, TableSchema } from '../core/types';
import { rangeCountSql, rangeRowsSql, splitPointsSql, type MssqlCompareTarget, type RangeShape } from './compare-sql';
import type { QueryParam } from './stream';
import { keyColumns } from './tsql';
import { copyFieldToMssql, mssqlToCopyField } from './values';

/** What the reads need from their side: statements on its one transaction, one at a time. */
export interface MssqlCompareRunner {
  query<R>(text: string, params: QueryParam[]): Promise<R[]>;
  /** The rows of a statement about `table` as lines (`toLine` per row), streamed; later statements wait until it has ended. */
  lines(table: TableSchema, text: string, params: QueryParam[], toLine: (row: unknown[]) => string): Readable;
  /** Where and in what shape `table` is read on this side. */
  target(table: TableSchema): Promise<MssqlCompareTarget>;
}

export class MssqlTableReads implements TableRangeReads {
  readonly digestForms: readonly DigestForm[] = ['canonical'];

  constructor(private readonly run: MssqlCompareRunner) {}

  async splitPoints(table: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]> {
    if (table.primaryKey.length === 0 || parts < 2) return [];
    const t = await this.run.target(table);
    const { shape, params } = bounds(t, range, undefined);
    const rows = Number((await this.run.query<{ n: string }>(rangeCountSql(t, shape), params))[0]?.n ?? 0);
    if (rows < 2) return [];
    const step = Math.max(1, Math.ceil(rows / parts));
    const counted = [...params, { name: 'step', type: sql.BigInt, value: String(step) }, { name: 'rows', type: sql.BigInt, value: String(rows) }];
    const keys = keyColumns(t.table);
    const found = await this.run.query<Record<string, unknown>>(splitPointsSql(t, shape), counted);
    return found.map((r) => keys.map((k, i) => mssqlToCopyField(k.type, r[`k${i}`])));
  }

  async rangeDigests(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]> {
    assertCanonical(opts.form, table);
    const out: RangeDigest[] = [];
    for (const range of ranges) {
      const acc = new DigestAccumulator();
      const columnTypes = types(table);
      await this.eachRow(table, range, opts, (fields) => acc.add(canonicalRowHash(columnTypes, fields)));
      out.push(acc.digest());
    }
    return out;
  }

  async rowHashes(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]> {
    assertCanonical(opts.form, table);
    if (table.primaryKey.length === 0) throw new MirrorError(FailureType.BadConfig, 'a table without a key has no row keys to compare', { table: table.name });
    const keyIndexes = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k));
    const out: RowHash[] = [];
    const columnTypes = types(table);
    for (const range of ranges) {
      await this.eachRow(table, range, opts, (fields) => {
        out.push({ key: keyIndexes.map((i) => fields[i] ?? null), hash: canonicalRowHash(columnTypes, fields).toString() });
      });
    }
    return out;
  }

  /** Every row of one range as COPY text fields of the table's columns. */
  private async eachRow(table: TableSchema, range: KeyRange, opts: DigestOptions, onRow: (fields: (string | null)[]) => void): Promise<void> {
    const t = await this.run.target(table);
    const { shape, params } = bounds(t, range, opts.exclude);
    // Read in this side's shape (a SQL Server mirror stores some types differently), as the row stream reads it.
    const readTypes = t.table.columns.map((c) => c.type);
    const toLine = (row: unknown[]): string => encodeLine(readTypes.map((type, i) => mssqlToCopyField(type, row[i])));
    for await (const { line } of readLines(this.run.lines(table, rangeRowsSql(t, shape), params, toLine))) onRow(decodeLine(line));
  }
}

/** A range's bounds and exclusions as parameters (@a0.., @b0.., @exclude), in the side's key types. */
function bounds(t: MssqlCompareTarget, range: KeyRange, exclude: KeyValues[] | undefined): { shape: RangeShape; params: QueryParam[] } {
  const keys = keyColumns(t.table);
  const params: QueryParam[] = [];
  const bound = (prefix: string, values: KeyValues): void => {
    values.forEach((v, i) => params.push({ name: `${prefix}${i}`, type: sql.NVarChar(sql.MAX), value: copyFieldToMssql(keys[i]!.type, v) }));
  };
  if (range.after) bound('a', range.after);
  if (range.upTo) bound('b', range.upTo);
  const excluding = exclude !== undefined && exclude.length > 0;
  if (excluding) {
    const json = JSON.stringify(exclude.map((k) => keys.map((c, i) => copyFieldToMssql(c.type, k[i] ?? null))));
    params.push({ name: 'exclude', type: sql.NVarChar(sql.MAX), value: json });
  }
  return { shape: { after: range.after !== undefined, upTo: range.upTo !== undefined, exclude: excluding }, params };
}

function types(table: TableSchema) {
  return table.columns.map((c) => c.type);
}

function assertCanonical(form: DigestForm, table: TableSchema): void {
  if (form !== 'canonical') throw new MirrorError(FailureType.BadConfig, `SQL Server computes only the canonical digest form, not ${JSON.stringify(form)}`, { table: table.name });
}
