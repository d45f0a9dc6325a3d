import { describe, expect, it } from 'vitest';
import { MirrorError } from '../../src/core/errors';
import type { TableSchema } from '../../src/core/types';
import * as sql from '../../src/postgres/mirror-sql';

const HOSTILE = 'a"b; drop table x;--';
const SCHEMA = 'tenant"; drop schema public;--';

const hostile: TableSchema = {
  name: HOSTILE,
  source: { schema: 'public', table: HOSTILE },
  columns: [
    { name: 'id"', type: { kind: 'int64' }, nullable: false },
    { name: 'k2', type: { kind: 'string', length: 5 }, nullable: false },
    { name: HOSTILE, type: { kind: 'string' }, nullable: true },
    { name: '_op', type: { kind: 'int32' }, nullable: true },
  ],
  primaryKey: ['id"', 'k2'],
};

/** Every double quote in SQL text must be part of a quoted identifier: strip quoted identifiers and none remain. */
function quotedIdentifiersBalanced(text: string): boolean {
  return !text.replace(/"(?:[^"]|"")*"/g, '').includes('"');
}

const QUOTED_TABLE = '"a""b; drop table x;--"';
const QUOTED_SCHEMA = '"tenant""; drop schema public;--"';

describe('names', () => {
  it('keeps a dotted name as one identifier', () => {
    expect(sql.qualified('t1', sql.mirrorRelation('sales.orders'))).toBe('"t1"."sales.orders"');
  });

  it('fits long names to 63 bytes and keeps them distinct', () => {
    const a = 'x'.repeat(70) + 'a';
    const b = 'x'.repeat(70) + 'b';
    for (const name of [a, b]) {
      expect(Buffer.byteLength(sql.mirrorRelation(name))).toBeLessThanOrEqual(63);
      expect(Buffer.byteLength(sql.shadowRelation(name))).toBeLessThanOrEqual(63);
      expect(Buffer.byteLength(sql.pkConstraintName(sql.mirrorRelation(name)))).toBeLessThanOrEqual(63);
    }
    expect(sql.mirrorRelation(a)).not.toBe(sql.mirrorRelation(b));
    expect(sql.shadowRelation(a)).not.toBe(sql.shadowRelation(b));
  });

  it('shadow and key names never equal the table name', () => {
    expect(sql.shadowRelation('orders')).toBe('_shadow_orders');
    expect(sql.pkConstraintName('orders')).toBe('_pk_orders');
  });

  it('refuses table names in the reserved spaces', () => {
    for (const name of ['_mirror_state', '_mirror_fence', '_mirror_log', '_shadow_orders', '_pk_orders']) {
      expect(() => sql.mirrorRelation(name)).toThrow(MirrorError);
    }
  });

  it('picks a staging operation column that no table column uses', () => {
    expect(sql.stagingOpColumn(hostile)).toBe('__op');
  });

  it('analyzes only the staging columns the apply filters and joins on: the operation and the key', () => {
    expect(sql.analyzeStagingSql(hostile)).toBe(`ANALYZE pg_temp."${sql.stagingTable(hostile)}" ("__op", "id""", "k2")`);
  });
});

describe('statements with hostile identifiers', () => {
  const live = sql.mirrorRelation(HOSTILE);
  const shadow = sql.shadowRelation(HOSTILE);
  const statements: [string, string][] = [
    ['create schema', sql.createSchemaSql(SCHEMA)],
    ['state table', sql.createStateTableSql(SCHEMA)],
    ['create table', sql.createTableSql(SCHEMA, live, hostile, { primaryKey: true })],
    ['create shadow', sql.createTableSql(SCHEMA, shadow, hostile, { primaryKey: false })],
    ['add pk', sql.addPrimaryKeySql(SCHEMA, shadow, hostile)],
    ['drop', sql.dropTableSql(SCHEMA, live)],
    ['rename', sql.renameTableSql(SCHEMA, shadow, live)],
    ['rename constraint', sql.renameConstraintSql(SCHEMA, live, sql.pkConstraintName(shadow), sql.pkConstraintName(live))],
    ['copy', sql.copyFromStdinSql(SCHEMA, shadow, hostile)],
    ['comment', sql.commentOnTableSql(SCHEMA, shadow, `{"k":"it's"}`)],
    ['staging', sql.createStagingSql(hostile)],
    ['copy staging', sql.copyStagingSql(hostile)],
    ['drop staging', sql.dropStagingSql(hostile)],
    ['delete', sql.deleteFromStagingSql(SCHEMA, live, hostile)],
    ['upsert', sql.upsertFromStagingSql(SCHEMA, live, hostile)],
    ['record population', sql.recordPopulationSql(SCHEMA)],
    ['record sync', sql.recordSyncSql(SCHEMA)],
    ['read state', sql.readStateSql(SCHEMA)],
  ];

  it.each(statements)('%s quotes every identifier', (_label, text) => {
    expect(quotedIdentifiersBalanced(text)).toBe(true);
    // The hostile text only ever appears inside a quoted identifier (or a string literal for the comment).
    const outside = text.replace(/"(?:[^"]|"")*"/g, '""').replace(/'(?:[^']|'')*'/g, "''");
    expect(outside).not.toMatch(/drop table x|drop schema public/i);
  });

  it('quotes the table and schema as whole identifiers', () => {
    expect(sql.createTableSql(SCHEMA, live, hostile, { primaryKey: true })).toContain(`${QUOTED_SCHEMA}.${QUOTED_TABLE}`);
    expect(sql.dropTableSql(SCHEMA, live)).toBe(`DROP TABLE IF EXISTS ${QUOTED_SCHEMA}.${QUOTED_TABLE}`);
  });

  it('escapes the comment as a string literal', () => {
    expect(sql.commentOnTableSql('s', 't', "it's")).toBe(`COMMENT ON TABLE "s"."t" IS 'it''s'`);
    expect(sql.commentOnTableSql('s', 't', null)).toBe('COMMENT ON TABLE "s"."t" IS NULL');
  });
});

describe('table DDL', () => {
  it('maps types, keeps key columns NOT NULL and names the key', () => {
    const text = sql.createTableSql('s', 'orders', hostile, { primaryKey: true });
    expect(text).toContain('"id""" bigint NOT NULL');
    expect(text).toContain('"k2" character varying(5) NOT NULL');
    expect(text).toContain(`${QUOTED_TABLE} text,`);
    expect(text).toContain('CONSTRAINT "_pk_orders" PRIMARY KEY ("id""", "k2")');
  });

  it('leaves the key out of a shadow', () => {
    expect(sql.createTableSql('s', '_shadow_orders', hostile, { primaryKey: false })).not.toContain('PRIMARY KEY');
  });
});

describe('change apply', () => {
  it('deletes by every key column', () => {
    expect(sql.deleteFromStagingSql('s', 't', hostile)).toBe(
      `DELETE FROM "s"."t" AS m USING pg_temp."${sql.stagingTable(hostile)}" AS s WHERE s."__op" = 'D' AND m."id""" = s."id""" AND m."k2" = s."k2"`,
    );
  });

  it('upserts every non-key column', () => {
    const text = sql.upsertFromStagingSql('s', 't', hostile);
    expect(text).toContain('ON CONFLICT ("id""", "k2") DO UPDATE SET');
    expect(text).toContain(`${QUOTED_TABLE} = EXCLUDED.${QUOTED_TABLE}`);
    expect(text).toContain('"_op" = EXCLUDED."_op"');
    expect(text).not.toContain('"k2" = EXCLUDED');
    expect(text).toContain(`WHERE "__op" = 'U'`);
  });

  it('does nothing on conflict when every column is a key', () => {
    const keysOnly: TableSchema = { ...hostile, columns: hostile.columns.slice(0, 2) };
    expect(sql.upsertFromStagingSql('s', 't', keysOnly)).toContain('ON CONFLICT ("id""", "k2") DO NOTHING');
  });

  it('stages the operation first, then the columns in schema order, all nullable, in a table kept per shape', () => {
    const name = sql.stagingTable(hostile);
    expect(name).toMatch(/^_mirror_staging_[0-9a-f]{16}$/);
    expect(sql.createStagingSql(hostile)).toBe(
      `CREATE TEMP TABLE IF NOT EXISTS "${name}" ("__op" "char", "id""" bigint, "k2" character varying(5), ${QUOTED_TABLE} text, "_op" integer) ON COMMIT DELETE ROWS`,
    );
    expect(sql.copyStagingSql(hostile)).toBe(`COPY pg_temp."${name}" ("__op", "id""", "k2", ${QUOTED_TABLE}, "_op") FROM STDIN`);
    // Another shape, another table: a connection never stages one table's changes in another's columns.
    const widened: TableSchema = { ...hostile, columns: hostile.columns.map((c) => (c.name === 'k2' ? { ...c, type: { kind: 'string', length: 9 } } : c)) };
    expect(sql.stagingTable(widened)).not.toBe(name);
    expect(sql.stagingTable({ ...hostile, name: 'other' })).toBe(name);
  });
});

describe('alterTableSql', () => {
  it('returns null without changes', () => {
    expect(sql.alterTableSql('s', 't', [])).toBeNull();
  });

  it('puts every change into one ALTER TABLE, adding columns as nullable', () => {
    const text = sql.alterTableSql('s', 't', [
      { kind: 'addColumn', column: { name: HOSTILE, type: { kind: 'int32' }, nullable: false } },
      { kind: 'widenType', column: 'n', from: { kind: 'int32' }, to: { kind: 'int64' } },
      { kind: 'dropNotNull', column: 'v' },
      { kind: 'dropColumn', column: 'old"' },
    ]);
    expect(text).toBe(
      `ALTER TABLE "s"."t" ADD COLUMN ${QUOTED_TABLE} integer, ALTER COLUMN "n" TYPE bigint, ` +
        `ALTER COLUMN "v" DROP NOT NULL, DROP COLUMN "old"""`,
    );
  });
});

describe("the partner's objects carried over a swap", () => {
  const index: sql.PartnerIndex = {
    name: 'big "totals"',
    quoted_name: '"big ""totals"""',
    quoted_table: 'mirror.orders',
    is_unique: true,
    definition: 'CREATE UNIQUE INDEX "big ""totals""" ON mirror.orders USING btree (total DESC) INCLUDE (customer_id) WHERE (total > (10)::numeric)',
  };

  it('rebuilds an index on the shadow under a temporary name, keeping everything after the table as PostgreSQL printed it', () => {
    const temp = sql.carriedIndexName(index.name);
    expect(temp).toMatch(/^_shadow_ix_[0-9a-f]{16}$/);
    expect(sql.indexOnShadowSql(index, 'mirror', '_shadow_orders', temp)).toBe(
      `CREATE UNIQUE INDEX "${temp}" ON "mirror"."_shadow_orders" USING btree (total DESC) INCLUDE (customer_id) WHERE (total > (10)::numeric)`,
    );
  });

  it('refuses a definition of another shape instead of guessing', () => {
    expect(sql.indexOnShadowSql({ ...index, definition: 'CREATE INDEX something else' }, 'mirror', '_shadow_orders', 't')).toBeNull();
    expect(sql.indexOnShadowSql({ ...index, is_unique: false }, 'mirror', '_shadow_orders', 't')).toBeNull();
  });

  it('grants to roles and PUBLIC, on the table or a column, with the grant option where it was', () => {
    expect(sql.grantSql(SCHEMA, 'orders', { grantee: 'reporting"x', privilege_type: 'SELECT', is_grantable: false, column_name: null })).toBe(
      `GRANT SELECT ON TABLE ${QUOTED_SCHEMA}."orders" TO "reporting""x"`,
    );
    expect(sql.grantSql('m', 'o', { grantee: null, privilege_type: 'UPDATE', is_grantable: true, column_name: 'total' })).toBe(
      'GRANT UPDATE ("total") ON TABLE "m"."o" TO PUBLIC WITH GRANT OPTION',
    );
    expect(() => sql.grantSql('m', 'o', { grantee: null, privilege_type: 'SELECT; DROP', is_grantable: false, column_name: null })).toThrow(/unexpected privilege/);
  });

  it('recreates a view with its options quoted and its trailing semicolon dropped', () => {
    expect(sql.createViewSql('partner', 'big', ' SELECT o.id\n   FROM mirror.orders o;', ['security_barrier=true', "check_option=lo'cal"])).toBe(
      `CREATE VIEW "partner"."big" WITH (security_barrier = 'true', check_option = 'lo''cal') AS SELECT o.id\n   FROM mirror.orders o`,
    );
    expect(() => sql.createViewSql('p', 'v', 'SELECT 1', ['x) AS SELECT 2; --=1'])).toThrow(/unexpected view option/);
  });
});
