import { describe, it, expect } from 'vitest';
import {
  sideTableName,
  sideTableSql,
  triggerFunctionSql,
  triggersSql,
} from '../../src/postgres/tracking';
import { assertVersion, changesSql, columnExpr, keyAfterPredicate, rowsSql } from '../../src/postgres/snapshot';
import { mirrorName } from '../../src/postgres/catalog';
import { startupOptions } from '../../src/postgres/connection';
import { MirrorError } from '../../src/core/errors';
import type { TableSchema } from '../../src/core/types';

const hostile = 'we"ird; DROP TABLE x;--';

const table: TableSchema = {
  name: `s p.${hostile}`,
  source: { schema: 's p', table: hostile },
  columns: [
    { name: 'v', type: { kind: 'string' }, nullable: true },
    { name: 'Id', type: { kind: 'int32' }, nullable: false },
    { name: "o'k", type: { kind: 'string' }, nullable: false },
  ],
  primaryKey: ["o'k", 'Id'],
};

describe('sideTableName', () => {
  it('keeps short names readable and fits long ones in 63 bytes, distinctly', () => {
    expect(sideTableName('public', 'orders')).toBe('public.orders');
    const a = sideTableName('public', 'x'.repeat(63));
    const b = sideTableName('public', 'x'.repeat(62) + 'y');
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(Buffer.byteLength(b)).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
    expect(Buffer.byteLength(sideTableName('ü'.repeat(31), 'é'.repeat(31)))).toBeLessThanOrEqual(63);
  });

  it('keeps dotted names apart that would otherwise read the same', () => {
    expect(sideTableName('a.b', 'c')).not.toBe(sideTableName('a', 'b.c'));
  });
});

describe('changesSql', () => {
  const sql = changesSql(table, 'side', '100', '250');

  it('selects the op, then every column in schema order, keys from the side table', () => {
    expect(sql).toBe(
      `COPY (SELECT CASE WHEN t."o'k" IS NULL THEN 'D' ELSE 'U' END, t."v", k."k2", k."k1" ` +
        `FROM (SELECT DISTINCT "k1", "k2" FROM "tenant_mirror_ct"."side" WHERE xid >= '100'::xid8 AND xid < '250'::xid8) k ` +
        `LEFT JOIN "s p"."we""ird; DROP TABLE x;--" t ON t."o'k" = k."k1" AND t."Id" = k."k2") TO STDOUT`,
    );
  });

  it('refuses versions that are not xid8 numbers', () => {
    expect(() => changesSql(table, 'side', "1'::xid8 OR true --", '2')).toThrow(MirrorError);
    expect(() => assertVersion('-1')).toThrow(MirrorError);
    expect(assertVersion('18446744073709551615')).toBe('18446744073709551615');
  });
});

describe('rowsSql and keyAfterPredicate', () => {
  it('reads all columns in key order, optionally after a key given as cast literals', () => {
    expect(rowsSql(table, null)).toBe(
      `COPY (SELECT "v", "Id", "o'k" FROM "s p"."we""ird; DROP TABLE x;--" ORDER BY "o'k", "Id") TO STDOUT`,
    );
    const pred = keyAfterPredicate(["o'k", 'Id'], ['text', 'integer'], ["it's\t\\", '7']);
    expect(pred).toBe(`("o'k", "Id") > ('it''s\t\\'::text, '7'::integer)`);
    expect(rowsSql(table, pred)).toContain(` WHERE ${pred} ORDER BY`);
  });

  it('rejects a resume key of the wrong width or with NULL', () => {
    expect(() => keyAfterPredicate(['a'], ['text'], ['x', 'y'])).toThrow(MirrorError);
    expect(() => keyAfterPredicate(['a'], ['text'], [null])).toThrow(MirrorError);
  });
});

describe('tracking DDL', () => {
  it('gives the side table positional key columns of the native types', () => {
    const [create, index] = sideTableSql('s p.t', [
      { name: 'op', type: 'text', collation: '"C"' },
      { name: 'xid', type: 'numeric(20,5)', collation: null },
    ]);
    expect(create).toContain('"k1" text COLLATE "C" NOT NULL');
    expect(create).toContain('"k2" numeric(20,5) NOT NULL');
    expect(create).toContain('xid xid8 NOT NULL DEFAULT pg_current_xact_id()');
    expect(index).toBe('CREATE INDEX ON "tenant_mirror_ct"."s p.t" (xid)');
  });

  it('generates a security-definer trigger function whose body is one quoted literal', () => {
    const sql = triggerFunctionSql(table, 'side');
    expect(sql).toMatch(/SECURITY DEFINER SET search_path = pg_catalog, pg_temp/);
    const body = /AS '([\s\S]*)'$/.exec(sql)?.[1];
    expect(body).toBeDefined();
    // Every quote inside the literal is doubled, so nothing ends it early.
    expect(body!.replace(/''/g, '')).not.toContain("'");
    expect(sql).toContain(`INSERT INTO "tenant_mirror_ct"."side" ("k1", "k2", op) VALUES (NEW."o''k", NEW."Id", ''I'');`);
    expect(sql).toContain(`(OLD."o''k", OLD."Id", ''D''), (NEW."o''k", NEW."Id", ''I'')`);
    expect(sql).toContain(`WHERE table_schema = ''s p'' AND table_name = ''we"ird; DROP TABLE x;--''`);
  });

  it('creates row and truncate triggers that fire in every replication role', () => {
    const [row, truncate, always] = triggersSql(table, 'side');
    expect(row).toBe(
      `CREATE TRIGGER "tenant_mirror_ct_row" AFTER INSERT OR UPDATE OR DELETE ON "s p"."we""ird; DROP TABLE x;--" ` +
        `FOR EACH ROW EXECUTE FUNCTION "tenant_mirror_ct"."side"()`,
    );
    expect(truncate).toContain('AFTER TRUNCATE');
    expect(truncate).toContain('FOR EACH STATEMENT');
    expect(always).toContain('ENABLE ALWAYS TRIGGER "tenant_mirror_ct_row", ENABLE ALWAYS TRIGGER "tenant_mirror_ct_truncate"');
  });
});

describe('columnExpr', () => {
  it('sends money (and money arrays) as numeric, everything else as itself', () => {
    expect(columnExpr('t."m"', { kind: 'money' })).toBe('t."m"::numeric');
    expect(columnExpr('t."m"', { kind: 'array', element: { kind: 'money' } })).toBe('t."m"::numeric[]');
    expect(columnExpr('t."s"', { kind: 'string' })).toBe('t."s"');
  });
});

describe('small helpers', () => {
  it('names mirror tables without public.', () => {
    expect(mirrorName('public', 'a')).toBe('a');
    expect(mirrorName('sales', 'a')).toBe('sales.a');
  });

  it('escapes spaces in startup options', () => {
    expect(startupOptions({ DateStyle: 'ISO, MDY', TimeZone: 'UTC' })).toBe('-c DateStyle=ISO,\\ MDY -c TimeZone=UTC');
  });
});
