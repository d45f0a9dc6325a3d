import { describe, it, expect } from 'vitest';
import {
  sideTableName,
  sideTableSql,
  triggerFunctionSql,
  triggersSql,
} from '../../src/postgres/tracking';
import { assertVersion, changesSql, columnExpr, keyPredicate, rowsSql } from '../../src/postgres/snapshot';
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
  it('keeps short names readable, unique by the table oid, and fits long ones in 63 bytes, distinctly', () => {
    expect(sideTableName('public', 'orders', '16384')).toBe('public.orders#16384');
    expect(sideTableName('public', 'orders', '16385')).not.toBe(sideTableName('public', 'orders', '16384'));
    const a = sideTableName('public', 'x'.repeat(63), '1');
    const b = sideTableName('public', 'x'.repeat(62) + 'y', '1');
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(Buffer.byteLength(b)).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
    expect(Buffer.byteLength(sideTableName('ü'.repeat(31), 'é'.repeat(31), '99999'))).toBeLessThanOrEqual(63);
  });
});

describe('changesSql', () => {
  const sql = changesSql(table, 'side', ['text', 'integer'], '100', '250');

  it('selects the op, then every column in schema order; keys recorded as text are cast back to their types', () => {
    expect(sql).toBe(
      `COPY (SELECT CASE WHEN t."o'k" IS NULL THEN 'D' ELSE 'U' END, t."v", kk."k2", kk."k1" ` +
        `FROM (SELECT DISTINCT k FROM "tenant_mirror_ct"."side" WHERE xid >= '100'::xid8 AND xid < '250'::xid8) c ` +
        `CROSS JOIN LATERAL (SELECT (c.k[1])::text AS "k1", (c.k[2])::integer AS "k2") kk ` +
        `LEFT JOIN "s p"."we""ird; DROP TABLE x;--" t ON t."o'k" = kk."k1" AND t."Id" = kk."k2") TO STDOUT`,
    );
  });

  it('refuses versions that are not xid8 numbers', () => {
    expect(() => changesSql(table, 'side', ['text', 'integer'], "1'::xid8 OR true --", '2')).toThrow(MirrorError);
    expect(() => assertVersion('-1')).toThrow(MirrorError);
    expect(assertVersion('18446744073709551615')).toBe('18446744073709551615');
  });
});

describe('rowsSql and keyPredicate', () => {
  it('reads all columns in key order, optionally after a key given as cast literals', () => {
    expect(rowsSql(table, null)).toBe(
      `COPY (SELECT "v", "Id", "o'k" FROM "s p"."we""ird; DROP TABLE x;--" ORDER BY "o'k", "Id") TO STDOUT`,
    );
    const pred = keyPredicate(["o'k", 'Id'], ['text', 'integer'], '>', ["it's\t\\", '7']);
    expect(pred).toBe(`("o'k", "Id") > ('it''s\t\\'::text, '7'::integer)`);
    expect(rowsSql(table, pred)).toContain(` WHERE ${pred} ORDER BY`);
  });

  it('rejects a resume key of the wrong width or with NULL', () => {
    expect(() => keyPredicate(['a'], ['text'], '>', ['x', 'y'])).toThrow(MirrorError);
    expect(() => keyPredicate(['a'], ['text'], '>', [null])).toThrow(MirrorError);
  });
});

describe('tracking DDL', () => {
  it('keeps the key as text in the side table: no key type is fixed at install', () => {
    const [create, index] = sideTableSql('s p.t#1');
    expect(create).toContain('k text[]');
    expect(create).toContain('xid xid8 NOT NULL DEFAULT pg_current_xact_id()');
    expect(index).toBe('CREATE INDEX ON "tenant_mirror_ct"."s p.t#1" (xid)');
  });

  it('generates a security-definer trigger function that names no column outside a guarded block', () => {
    const sql = triggerFunctionSql('side', ["o'k", 'Id']);
    expect(sql).toMatch(/SECURITY DEFINER SET search_path = pg_catalog, pg_temp/);
    const body = /AS '([\s\S]*)'$/.exec(sql)?.[1];
    expect(body).toBeDefined();
    // Every quote inside the literal is doubled, so nothing ends it early.
    expect(body!.replace(/''/g, '')).not.toContain("'");
    // A key column is read only inside an exception block that turns any error into a NULL key.
    expect(sql).toContain(`BEGIN n := ARRAY[NEW."o''k"::text, NEW."Id"::text]; EXCEPTION WHEN OTHERS THEN n := ARRAY[NULL::text]; END;`);
    expect(sql).toContain(`BEGIN o := ARRAY[OLD."o''k"::text, OLD."Id"::text]; EXCEPTION WHEN OTHERS THEN o := ARRAY[NULL::text]; END;`);
    expect(body!.replace(/BEGIN [no] := ARRAY\[[^\]]*\]; EXCEPTION[^;]*; END;/g, '')).not.toMatch(/(NEW|OLD)\./);
    // A side table dropped by hand stops recording instead of failing the tenant's write.
    expect(sql).toContain(`pg_catalog.to_regclass(''tenant_mirror_ct."side"'') IS NULL THEN RETURN NULL`);
    expect(sql).toContain(`INSERT INTO "tenant_mirror_ct"."side" (k, op) VALUES (o, ''D''), (n, ''I'')`);
  });

  it('creates a row trigger, and truncate triggers on the table and each partition, firing in every replication role', () => {
    const [row, rowAlways, truncate, truncateAlways, partition] = triggersSql(table, '16384', 'side', ['"s p"."p1"']);
    expect(row).toBe(
      `CREATE TRIGGER "tenant_mirror_ct_row" AFTER INSERT OR UPDATE OR DELETE ON "s p"."we""ird; DROP TABLE x;--" ` +
        `FOR EACH ROW EXECUTE FUNCTION "tenant_mirror_ct"."side"()`,
    );
    expect(rowAlways).toContain('ENABLE ALWAYS TRIGGER "tenant_mirror_ct_row"');
    expect(truncate).toContain('AFTER TRUNCATE');
    expect(truncate).toContain(`EXECUTE FUNCTION "tenant_mirror_ct"."record_truncate"('16384')`);
    expect(truncateAlways).toContain('ENABLE ALWAYS TRIGGER "tenant_mirror_ct_truncate"');
    expect(partition).toContain('AFTER TRUNCATE ON "s p"."p1"');
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
