import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeLine } from '../../src/core/copy-text';
import { CRM_TABLES, TABLE_DEFS, copyText, planCounts, primaryKeyOf, type CrmTableName, type RowCounts } from '../../dev/demo/crm';

function digest(table: CrmTableName, counts: RowCounts, seed: number): { hash: string; lines: string[] } {
  const text = [...copyText(table, counts, seed, 97)].join('');
  return { hash: createHash('sha256').update(text).digest('hex'), lines: text.split('\n').slice(0, -1) };
}

describe('demo CRM generator', () => {
  it('plans counts that sum to the requested total, for several sizes', () => {
    for (const total of [500, 1_234, 100_000, 1_000_003]) {
      const counts = planCounts(total);
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(total);
      for (const table of CRM_TABLES) expect(counts[table]).toBeGreaterThan(0);
      expect(counts.price_book_entries).toBe(counts.price_books * counts.products);
    }
    expect(() => planCounts(10)).toThrow(RangeError);
  });

  it('yields exactly the planned rows per table, each with every column and a unique key', () => {
    const counts = planCounts(3_000);
    for (const table of CRM_TABLES) {
      const { lines } = digest(table, counts, 7);
      expect(lines, table).toHaveLength(counts[table]);
      const keyIdx = primaryKeyOf(table).map((c) => TABLE_DEFS[table].columns.indexOf(c));
      const keys = new Set<string>();
      for (const line of lines) {
        const fields = decodeLine(line);
        expect(fields, table).toHaveLength(TABLE_DEFS[table].columns.length);
        if (keyIdx.length) keys.add(JSON.stringify(keyIdx.map((i) => fields[i])));
      }
      if (keyIdx.length) expect(keys.size, table).toBe(counts[table]);
    }
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const counts = planCounts(2_000);
    for (const table of ['accounts', 'notes', 'quote_lines', 'invoices'] as const) {
      const a = digest(table, counts, 42).hash;
      expect(digest(table, counts, 42).hash, table).toBe(a);
      expect(digest(table, counts, 43).hash, table).not.toBe(a);
    }
  });
});
