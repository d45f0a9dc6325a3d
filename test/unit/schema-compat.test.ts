import { describe, expect, it } from 'vitest';
import { compareSchema, describeChange, typeRelation, type ExistingTable } from '../../src/core/schema-compat';
import { canonicalJson, schemaHash } from '../../src/core/schema-hash';
import type { ColumnSchema, LogicalType, TableSchema } from '../../src/core/types';

function table(columns: ColumnSchema[], primaryKey = ['id']): TableSchema {
  return { name: 'orders', source: { schema: 'public', table: 'orders' }, columns, primaryKey };
}
const col = (name: string, type: LogicalType, nullable = true): ColumnSchema => ({ name, type, nullable });
const id: ColumnSchema = col('id', { kind: 'int32' }, false);

function existing(columns: ColumnSchema[], primaryKey = ['id']): ExistingTable {
  return { columns: columns.map((c) => ({ ...c })), primaryKey };
}

describe('typeRelation', () => {
  const cases: [string, LogicalType, LogicalType, 'equal' | 'widening' | 'incompatible'][] = [
    ['int32 → int64', { kind: 'int32' }, { kind: 'int64' }, 'widening'],
    ['int64 → int32', { kind: 'int64' }, { kind: 'int32' }, 'incompatible'],
    ['int16 → int32', { kind: 'int16' }, { kind: 'int32' }, 'widening'],
    ['int8 → int16', { kind: 'int8' }, { kind: 'int16' }, 'widening'],
    ['int32 → int32', { kind: 'int32' }, { kind: 'int32' }, 'equal'],
    ['float32 → float64', { kind: 'float32' }, { kind: 'float64' }, 'widening'],
    ['float64 → float32', { kind: 'float64' }, { kind: 'float32' }, 'incompatible'],
    ['int32 → float64', { kind: 'int32' }, { kind: 'float64' }, 'incompatible'],
    ['varchar(10) → varchar(20)', { kind: 'string', length: 10 }, { kind: 'string', length: 20 }, 'widening'],
    ['varchar(20) → varchar(10)', { kind: 'string', length: 20 }, { kind: 'string', length: 10 }, 'incompatible'],
    ['varchar(10) → text', { kind: 'string', length: 10 }, { kind: 'string' }, 'widening'],
    ['text → varchar(10)', { kind: 'string' }, { kind: 'string', length: 10 }, 'incompatible'],
    ['char(3) → varchar(3)', { kind: 'string', length: 3, fixed: true }, { kind: 'string', length: 3 }, 'incompatible'],
    ['char(3) → char(5)', { kind: 'string', length: 3, fixed: true }, { kind: 'string', length: 5, fixed: true }, 'widening'],
    ['numeric(10,2) → numeric(12,2)', { kind: 'decimal', precision: 10, scale: 2 }, { kind: 'decimal', precision: 12, scale: 2 }, 'widening'],
    ['numeric(10,2) → numeric(12,4)', { kind: 'decimal', precision: 10, scale: 2 }, { kind: 'decimal', precision: 12, scale: 4 }, 'widening'],
    ['numeric(10,2) → numeric(11,4)', { kind: 'decimal', precision: 10, scale: 2 }, { kind: 'decimal', precision: 11, scale: 4 }, 'incompatible'],
    ['numeric(10,2) → numeric(10,1)', { kind: 'decimal', precision: 10, scale: 2 }, { kind: 'decimal', precision: 10, scale: 1 }, 'incompatible'],
    ['numeric(10,2) → numeric', { kind: 'decimal', precision: 10, scale: 2 }, { kind: 'decimal' }, 'widening'],
    ['numeric → numeric(10,2)', { kind: 'decimal' }, { kind: 'decimal', precision: 10, scale: 2 }, 'incompatible'],
    ['int32 → numeric(10,0)', { kind: 'int32' }, { kind: 'decimal', precision: 10, scale: 0 }, 'widening'],
    ['int32 → numeric(9,0)', { kind: 'int32' }, { kind: 'decimal', precision: 9, scale: 0 }, 'incompatible'],
    ['timestamp(3) → timestamp(6)', { kind: 'timestamp', precision: 3 }, { kind: 'timestamp', precision: 6 }, 'widening'],
    ['timestamp → timestamp(3)', { kind: 'timestamp' }, { kind: 'timestamp', precision: 3 }, 'incompatible'],
    ['timestamp(6) ≡ timestamp', { kind: 'timestamp', precision: 6 }, { kind: 'timestamp' }, 'equal'],
    ['timestamp → timestamptz', { kind: 'timestamp' }, { kind: 'timestamptz' }, 'incompatible'],
    ['varchar(5)[] → varchar(9)[]', { kind: 'array', element: { kind: 'string', length: 5 } }, { kind: 'array', element: { kind: 'string', length: 9 } }, 'widening'],
    ['int32[] → int32', { kind: 'array', element: { kind: 'int32' } }, { kind: 'int32' }, 'incompatible'],
    ['json → jsonb', { kind: 'json' }, { kind: 'jsonb' }, 'incompatible'],
    ['native inet ≡ inet', { kind: 'native', dialect: 'postgres', name: 'inet' }, { kind: 'native', dialect: 'postgres', name: 'inet' }, 'equal'],
    ['native inet → cidr', { kind: 'native', dialect: 'postgres', name: 'inet' }, { kind: 'native', dialect: 'postgres', name: 'cidr' }, 'incompatible'],
    ['uuid → string', { kind: 'uuid' }, { kind: 'string' }, 'incompatible'],
  ];
  it.each(cases)('%s', (_label, from, to, expected) => {
    expect(typeRelation(from, to)).toBe(expected);
  });
});

describe('compareSchema', () => {
  const name = col('name', { kind: 'string', length: 10 });

  it('equal shapes are unchanged, whatever the column order', () => {
    expect(compareSchema(existing([name, id]), table([id, name]))).toEqual({ status: 'unchanged' });
  });

  it('adds a new column', () => {
    const added = col('note', { kind: 'string' }, false);
    const result = compareSchema(existing([id, name]), table([id, name, added]));
    expect(result).toEqual({ status: 'altered', changes: [{ kind: 'addColumn', column: added }] });
  });

  it('drops a column the source no longer has', () => {
    const result = compareSchema(existing([id, name]), table([id]));
    expect(result).toEqual({ status: 'altered', changes: [{ kind: 'dropColumn', column: 'name' }] });
  });

  it('widens a varchar and an int32 key column', () => {
    const result = compareSchema(
      existing([id, name]),
      table([col('id', { kind: 'int64' }, false), col('name', { kind: 'string', length: 50 })]),
    );
    expect(result.status).toBe('altered');
    if (result.status !== 'altered') return;
    expect(result.changes.map((c) => c.kind)).toEqual(['widenType', 'widenType']);
    expect(result.changes.map(describeChange)).toEqual([
      'widen column "id" from int32 to int64',
      'widen column "name" from string(10) to string(50)',
    ]);
  });

  it('narrowing a column is incompatible and names the column', () => {
    const result = compareSchema(existing([id, name]), table([id, col('name', { kind: 'string', length: 5 })]));
    expect(result.status).toBe('incompatible');
    if (result.status === 'incompatible') expect(result.reason).toContain('"name"');
  });

  it('int64 → int32 is incompatible', () => {
    const big = col('n', { kind: 'int64' });
    expect(compareSchema(existing([id, big]), table([id, col('n', { kind: 'int32' })])).status).toBe('incompatible');
  });

  it('a changed primary key is incompatible (different columns, or different order)', () => {
    const other = col('other', { kind: 'int32' }, false);
    expect(compareSchema(existing([id, other]), table([id, other], ['other'])).status).toBe('incompatible');
    expect(compareSchema(existing([id, other], ['id', 'other']), table([id, other], ['other', 'id'])).status).toBe(
      'incompatible',
    );
    expect(compareSchema(existing([id, other], ['id']), table([id, other], ['id', 'other'])).status).toBe('incompatible');
  });

  it('relaxes NOT NULL when the source column became nullable', () => {
    const strict = col('name', { kind: 'string', length: 10 }, false);
    expect(compareSchema(existing([id, strict]), table([id, name]))).toEqual({
      status: 'altered',
      changes: [{ kind: 'dropNotNull', column: 'name' }],
    });
  });

  it('ignores a NOT NULL tightening: the looser mirror accepts every row', () => {
    const strict = col('name', { kind: 'string', length: 10 }, false);
    expect(compareSchema(existing([id, name]), table([id, strict]))).toEqual({ status: 'unchanged' });
  });

  it('never drops NOT NULL on a key column', () => {
    expect(compareSchema(existing([id]), table([col('id', { kind: 'int32' }, true)]))).toEqual({ status: 'unchanged' });
  });

  it('collects several compatible changes at once', () => {
    const result = compareSchema(
      existing([id, name, col('gone', { kind: 'boolean' })]),
      table([id, col('name', { kind: 'string' }), col('added', { kind: 'date' })]),
    );
    expect(result.status).toBe('altered');
    if (result.status === 'altered') {
      expect(result.changes.map((c) => c.kind).sort()).toEqual(['addColumn', 'dropColumn', 'widenType']);
    }
  });
});

describe('schemaHash', () => {
  const base = table([id, col('name', { kind: 'string', length: 10 })]);

  it('does not depend on property order', () => {
    const reordered: TableSchema = {
      primaryKey: ['id'],
      columns: [
        { nullable: false, type: { kind: 'int32' }, name: 'id' },
        { type: { length: 10, kind: 'string' }, nullable: true, name: 'name' },
      ],
      source: { table: 'orders', schema: 'public' },
      name: 'orders',
    };
    expect(schemaHash(reordered)).toBe(schemaHash(base));
    expect(schemaHash(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes with any column attribute, the column order or the key', () => {
    const variants: TableSchema[] = [
      table([id, col('name', { kind: 'string', length: 11 })]),
      table([id, col('name', { kind: 'string', length: 10 }, false)]),
      table([id, col('nome', { kind: 'string', length: 10 })]),
      table([col('name', { kind: 'string', length: 10 }), id]),
      table([id, col('name', { kind: 'string', length: 10 }, false)], ['id', 'name']),
      { ...base, name: 'orders2' },
    ];
    const hashes = new Set([schemaHash(base), ...variants.map(schemaHash)]);
    expect(hashes.size).toBe(variants.length + 1);
  });

  it('ignores where the rows are read from', () => {
    expect(schemaHash({ ...base, source: { schema: 'x', table: 'y' } })).toBe(schemaHash(base));
  });

  it('canonical JSON sorts keys and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }] })).toBe('{"a":[{"c":"x"}],"b":1}');
  });
});
