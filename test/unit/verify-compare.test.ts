/**
 * The comparison's pure parts: ranges and segments, the bucket expression's binary search (evaluated here by a tiny
 * interpreter of the CASE text it writes), and the narrowing algorithm against in-memory sides that implement
 * TableRangeReads as an adapter would (rows by key, digests over the canonical row hash).
 */
import { describe, expect, it } from 'vitest';
import { bucketExpression, rangesBetween, segmentsOf } from '../../src/core/key-ranges';
import { canonicalRowHash, DigestAccumulator } from '../../src/core/row-digest';
import type { DigestOptions, KeyRange, KeyValues, RangeDigest, RowHash, TableRangeReads, TableSchema } from '../../src/core/types';
import { commonForm, compareKeyed, compareWhole, recompare, type CompareSettings } from '../../src/verify/compare';

const table: TableSchema = {
  name: 'orders',
  source: { schema: 'public', table: 'orders' },
  columns: [
    { name: 'id', type: { kind: 'int64' }, nullable: false },
    { name: 'v', type: { kind: 'string' }, nullable: true },
  ],
  primaryKey: ['id'],
};

/** A side holding rows in memory: keys compared as numbers, as an adapter compares an int key. */
class MemorySide implements TableRangeReads {
  readonly digestForms = ['canonical'] as const;
  calls = { split: 0, digests: 0, hashes: 0, hashedRows: 0 };
  constructor(readonly rows: Map<number, string | null>) {}

  private inRange(k: number, r: KeyRange): boolean {
    return (r.after === undefined || k > Number(r.after[0])) && (r.upTo === undefined || k <= Number(r.upTo[0]));
  }

  private sorted(r: KeyRange): number[] {
    return [...this.rows.keys()].filter((k) => this.inRange(k, r)).sort((a, b) => a - b);
  }

  private hash(k: number): bigint {
    return canonicalRowHash(table.columns.map((c) => c.type), [String(k), this.rows.get(k) ?? null]);
  }

  async splitPoints(_t: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]> {
    this.calls.split++;
    const keys = this.sorted(range);
    if (keys.length < 2 || parts < 2) return [];
    const step = Math.ceil(keys.length / parts);
    return keys.filter((_k, i) => (i + 1) % step === 0 && i + 1 < keys.length).map((k) => [String(k)]);
  }

  async rangeDigests(_t: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]> {
    this.calls.digests++;
    const out: RangeDigest[] = [];
    for (const r of ranges) {
      const acc = new DigestAccumulator();
      for (const k of this.sorted(r)) if (!excluded(k, opts)) acc.add(this.hash(k));
      out.push(acc.digest());
    }
    return out;
  }

  async rowHashes(_t: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]> {
    this.calls.hashes++;
    const out: RowHash[] = [];
    for (const r of ranges) for (const k of this.sorted(r)) if (!excluded(k, opts)) out.push({ key: [String(k)], hash: this.hash(k).toString() });
    this.calls.hashedRows += out.length;
    return out;
  }
}

function excluded(k: number, opts: DigestOptions): boolean {
  return (opts.exclude ?? []).some((e) => Number(e[0]) === k);
}

function rows(n: number): Map<number, string | null> {
  return new Map(Array.from({ length: n }, (_v, i) => [i + 1, `value ${i + 1}`]));
}

const SMALL: CompareSettings = { leafRows: 20, firstParts: 8, splitParts: 4, leavesPerFetch: 3 };
const canonical: DigestOptions = { form: 'canonical' };

describe('key ranges', () => {
  it('cuts a range at the given keys', () => {
    expect(rangesBetween({}, [['10'], ['20']])).toEqual([{ upTo: ['10'] }, { after: ['10'], upTo: ['20'] }, { after: ['20'] }]);
    expect(rangesBetween({ after: ['5'], upTo: ['9'] }, [])).toEqual([{ after: ['5'], upTo: ['9'] }]);
  });

  it('covers the whole key order with segments, gaps included', () => {
    expect(segmentsOf([{ after: ['1'], upTo: ['2'] }, { after: ['5'], upTo: ['6'] }])).toEqual([
      { upTo: ['1'], range: null },
      { upTo: ['2'], range: 0 },
      { upTo: ['5'], range: null },
      { upTo: ['6'], range: 1 },
      { range: null },
    ]);
    expect(segmentsOf([{}])).toEqual([{ range: 0 }]);
    expect(segmentsOf([{ upTo: ['3'] }, { after: ['3'] }])).toEqual([{ upTo: ['3'], range: 0 }, { range: 1 }]);
    expect(() => segmentsOf([{ after: ['3'] }, { after: ['5'] }])).toThrow(/only the last/);
    expect(() => segmentsOf([{ upTo: ['3'] }, { upTo: ['5'] }])).toThrow(/overlap/);
  });

  it('assigns every key to its range with one binary search (the CASE text the adapters send)', () => {
    const ranges = [{ after: ['10'], upTo: ['20'] }, { after: ['20'], upTo: ['30'] }, { after: ['50'], upTo: ['60'] }, { after: ['60'] }];
    const text = bucketExpression(segmentsOf(ranges), (b) => `k <= ${b[0]}`, (r) => (r === null ? 'NULL' : String(r)));
    const expected = (k: number): number | null => ranges.findIndex((r) => k > Number(r.after[0]) && (r.upTo === undefined || k <= Number(r.upTo[0])));
    for (let k = 0; k <= 80; k++) {
      const want = expected(k);
      expect(evaluate(text, k), `key ${k}`).toBe(want === -1 ? null : want);
    }
    // log2 of the segments, not their number, comparisons per key.
    const deepest = Math.max(...[...text.matchAll(/CASE/g)].map((m) => depthAt(text, m.index)));
    expect(deepest).toBeLessThanOrEqual(Math.ceil(Math.log2(segmentsOf(ranges).length)));
  });
});

/** Evaluates `CASE WHEN k <= n THEN a ELSE b END` trees for one k. */
function evaluate(text: string, k: number): number | null {
  const tokens = text.split(/\s+/);
  let i = 0;
  const expr = (): number | null => {
    const t = tokens[i++]!;
    if (t !== 'CASE') return t === 'NULL' ? null : Number(t);
    expect(tokens.slice(i, i + 3)).toEqual(['WHEN', 'k', '<=']);
    const bound = Number(tokens[i + 3]);
    i += 4;
    expect(tokens[i++]).toBe('THEN');
    const a = expr();
    expect(tokens[i++]).toBe('ELSE');
    const b = expr();
    expect(tokens[i++]).toBe('END');
    return k <= bound ? a : b;
  };
  return expr();
}

function depthAt(text: string, index: number): number {
  const before = text.slice(0, index);
  return (before.match(/CASE/g)?.length ?? 0) - (before.match(/END/g)?.length ?? 0) + 1;
}

describe('compareKeyed', () => {
  it('finds nothing in equal tables, reading each side’s rows only as digests', async () => {
    const source = new MemorySide(rows(1000));
    const mirror = new MemorySide(rows(1000));
    const result = await compareKeyed(table, { source, mirror }, canonical, SMALL);
    expect(result.differences.size).toBe(0);
    expect(result.sourceRows).toBe(1000);
    expect(source.calls.hashes + mirror.calls.hashes).toBe(0);
  });

  it('names a changed value, a missing row and an extra row, fetching only small ranges around them', async () => {
    const source = new MemorySide(rows(5000));
    const mirror = new MemorySide(rows(5000));
    mirror.rows.set(1234, 'tampered');
    mirror.rows.delete(4321);
    mirror.rows.set(9999, 'only in the mirror');
    const result = await compareKeyed(table, { source, mirror }, canonical, SMALL);
    expect([...result.differences.values()].sort((a, b) => Number(a.key[0]) - Number(b.key[0]))).toEqual([
      { key: ['1234'], kind: 'value' },
      { key: ['4321'], kind: 'missing' },
      { key: ['9999'], kind: 'extra' },
    ]);
    expect(result.sourceRows).toBe(5000);
    expect(result.mirrorRows).toBe(5000);
    // Narrowed, not fetched whole: a few leaves of at most ~leafRows rows per difference.
    expect(source.calls.hashedRows).toBeLessThan(3 * 2 * SMALL.leafRows);
    expect(source.calls.split).toBeGreaterThan(1);
  });

  it('narrows a range the mirror holds many more rows of by cutting where the rows are', async () => {
    const source = new MemorySide(rows(100));
    const mirror = new MemorySide(rows(100));
    for (let k = 1001; k <= 3000; k++) mirror.rows.set(k, 'junk');
    const result = await compareKeyed(table, { source, mirror }, canonical, SMALL);
    expect(result.differences.size).toBe(2000);
    expect([...result.differences.values()].every((d) => d.kind === 'extra')).toBe(true);
    expect(mirror.calls.split).toBeGreaterThan(0);
  });

  it('leaves out the keys it is told to (the source changed them after the mirror’s LSN)', async () => {
    const source = new MemorySide(rows(500));
    const mirror = new MemorySide(rows(500));
    source.rows.set(10, 'changed at the source since');
    mirror.rows.delete(20);
    const result = await compareKeyed(table, { source, mirror }, { form: 'canonical', exclude: [['10'], ['20']] }, SMALL);
    expect(result.differences.size).toBe(0);
  });

  it('looks again at the ranges it fetched: a difference gone by then is not confirmed', async () => {
    const source = new MemorySide(rows(500));
    const mirror = new MemorySide(rows(500));
    mirror.rows.set(77, 'in flight');
    mirror.rows.set(300, 'wrong');
    const first = await compareKeyed(table, { source, mirror }, canonical, SMALL);
    expect(first.differences.size).toBe(2);
    mirror.rows.set(77, 'value 77');
    const again = await recompare(table, { source, mirror }, first.fetched, canonical, SMALL);
    expect([...again.values()]).toEqual([{ key: ['300'], kind: 'value' }]);
  });
});

describe('compareWhole and forms', () => {
  it('compares a keyless table as one count and digest', async () => {
    const source = new MemorySide(rows(50));
    const mirror = new MemorySide(rows(50));
    expect(await compareWhole({ ...table, primaryKey: [] }, { source, mirror }, canonical)).toEqual({ sourceRows: 50, mirrorRows: 50, equal: true });
    mirror.rows.set(3, 'x');
    expect((await compareWhole({ ...table, primaryKey: [] }, { source, mirror }, canonical)).equal).toBe(false);
  });

  it('picks the first form both sides compute', () => {
    expect(commonForm(['pg-hashtext', 'canonical'], ['pg-hashtext', 'canonical'])).toBe('pg-hashtext');
    expect(commonForm(['pg-hashtext', 'canonical'], ['canonical'])).toBe('canonical');
    expect(commonForm(['canonical'], ['pg-hashtext'])).toBeNull();
  });
});
