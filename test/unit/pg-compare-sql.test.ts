/**
 * The PostgreSQL comparison statements' shape (what they do is tested on real servers in
 * test/integration/verify.test.ts): key order, values as parameters (literals only in COPY, quoted), hostile names.
 */
import { describe, expect, it } from 'vitest';
import type { TableSchema } from '../../src/core/types';
import { arrayLiteral, digestsSql, mirrorSide, rangeRowsCopySql, rowHashesSql, sourceSide, splitPointsSql } from '../../src/postgres/compare-sql';
import { formatKey, formatVerdict, verifyExitCode } from '../../src/cli/verify-format';
import { checkExitCode, formatCheck } from '../../src/cli/check-format';

const HOSTILE = `we"ird'; DROP TABLE x;--`;

const table: TableSchema = {
  name: 'sales.lines',
  source: { schema: 'sales', table: HOSTILE },
  columns: [
    { name: 'order', type: { kind: 'int32' }, nullable: false },
    { name: 'code', type: { kind: 'string' }, nullable: false },
    { name: 'price', type: { kind: 'money' }, nullable: true },
    { name: 'mood', type: { kind: 'string' }, nullable: true },
  ],
  primaryKey: ['order', 'code'],
};

describe('PostgreSQL comparison SQL', () => {
  it('orders keys by value, strings by code point whatever the collation, with row comparisons for a composite key', () => {
    const s = digestsSql(mirrorSide('mirror', 'sales.lines'), table, [{ upTo: ['5', 'b'] }, { after: ['5', 'b'] }], []);
    expect(s.text).toContain(`(t."order", (t."code")::text COLLATE "C") <= (($1::text)::integer, ($2::text) COLLATE "C")`);
    expect(s.text).toContain('FROM "mirror"."sales.lines" AS t');
    expect(s.values).toEqual(['5', 'b', '5', 'b', '5', 'b']);
    expect(s.text).not.toContain("'b'");
  });

  it('reads the source in the types the mirror stores (money as numeric(19,4)), quoting every name', () => {
    const s = rowHashesSql(sourceSide(table), table, [{}], [['1', "it's"]]);
    expect(s.text).toContain('FROM "sales"."we""ird\'; DROP TABLE x;--" AS t');
    expect(s.text).toContain('(t."price"::numeric)::numeric(19,4)');
    expect(s.text).toContain('NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS x("k0", "k1")');
    expect(s.values).toEqual([['1'], ["it's"]]);
  });

  it('inlines values only in COPY, as quoted literals', () => {
    const text = rangeRowsCopySql(mirrorSide('m', 't'), table, [{ after: ['1', "o'clock"] }], [['2', 'a"b\\c']]);
    expect(text).toMatch(/^COPY \(/);
    expect(text).toContain(`'o''clock'::text`);
    expect(text).toContain(`'{"2"}'::text[]`);
    expect(text).toContain(`'{"a\\"b\\\\c"}'::text[]`);
    expect(arrayLiteral(['', 'NULL', 'x,y'])).toBe('{"","NULL","x,y"}');
  });

  it('picks every step-th key of a range, never the last row', () => {
    const s = splitPointsSql(mirrorSide('m', 't'), table, { after: ['1', 'a'] }, 100, 1000);
    expect(s.text).toContain('row_number() OVER (ORDER BY t."order", (t."code")::text COLLATE "C")');
    expect(s.text).toMatch(/rn % \$3::int8 = 0 AND s\.rn < \$4::int8/);
    expect(s.values).toEqual(['1', 'a', 100, 1000]);
  });
});

describe('verify and check output', () => {
  it('names keys plainly when they are plain, quoted when not', () => {
    expect(formatKey(['id'], ['42'])).toBe('id=42');
    expect(formatKey(['order', 'code'], ['5', 'a b'])).toBe('(order=5, code="a b")');
  });

  it('says what differs by key, never by value, and exits 1 unless every table is equal', () => {
    const line = formatVerdict({
      table: 'big',
      verdict: 'differs',
      keys: 2,
      keyColumns: ['id'],
      examples: [{ key: ['7'], kind: 'value' }, { key: ['9'], kind: 'missing' }],
      sourceRows: 10,
      mirrorRows: 9,
      keyless: false,
      leftOut: 3,
      ms: 1500,
    });
    expect(line).toBe("big: differs: 2 keys, e.g. id=7 (value differs), id=9 (missing in the mirror) — 10 rows at the source, 9 in the mirror; 3 keys changed at the source since the mirror's LSN left out (1.5 s)");
    const equal = { table: 'a', verdict: 'equal' as const, rows: 1, keyless: false, leftOut: 0, ms: 1 };
    expect(verifyExitCode({ tenant: 't', tables: [equal], skipped: [] })).toBe(0);
    expect(verifyExitCode({ tenant: 't', tables: [equal, { table: 'b', verdict: 'unstable', reason: 'x', ms: 1 }], skipped: [] })).toBe(1);
  });

  it('check: 1 on a blocker, 2 when a side cannot be reached', () => {
    const ok = { tenant: 't', unreachable: [], findings: [{ level: 'ok' as const, subject: 'source', message: 'fine' }] };
    expect(checkExitCode(ok)).toBe(0);
    expect(formatCheck(ok)).toBe('ok       source: fine\ntenant t: no blockers');
    expect(checkExitCode({ ...ok, findings: [...ok.findings, { level: 'blocker', subject: 'table x', message: 'no' }] })).toBe(1);
    expect(checkExitCode({ tenant: 't', unreachable: [{ side: 'mirror', message: 'refused' }], findings: [] })).toBe(2);
  });
});
