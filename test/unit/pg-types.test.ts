import { describe, expect, it } from 'vitest';
import { logicalToPgType, pgTypeToLogical } from '../../src/postgres/types';

describe('PostgreSQL type mapping', () => {
  // PostgreSQL → PostgreSQL must be exact: every format_type() string maps to itself.
  const roundTrips = [
    'boolean', 'smallint', 'integer', 'bigint', 'real', 'double precision', 'text', 'bytea', 'date', 'interval',
    'uuid', 'json', 'jsonb', 'xml', 'numeric', 'numeric(20,5)', 'numeric(10,0)', 'character varying(20)',
    'character varying', 'character(5)', 'time without time zone', 'time(3) without time zone',
    'time with time zone', 'timestamp without time zone', 'timestamp(3) without time zone',
    'timestamp with time zone', 'timestamp(0) with time zone', 'integer[]', 'text[]', 'numeric(12,2)[]',
    'inet', 'cidr', 'macaddr', 'tsvector', 'bit(8)', 'int4range', 'point', 'bpchar',
  ];
  it.each(roundTrips)('%s maps to itself', (formatted) => {
    const expected = formatted === 'character varying' ? 'text' : formatted;
    expect(logicalToPgType(pgTypeToLogical(formatted))).toBe(expected);
  });

  it('reads precision, scale and length', () => {
    expect(pgTypeToLogical('numeric(20,5)')).toEqual({ kind: 'decimal', precision: 20, scale: 5 });
    expect(pgTypeToLogical('character varying(20)')).toEqual({ kind: 'string', length: 20 });
    expect(pgTypeToLogical('character(5)')).toEqual({ kind: 'string', length: 5, fixed: true });
    // An unbounded bpchar is not character(1): longer values must fit.
    expect(pgTypeToLogical('bpchar')).toEqual({ kind: 'native', dialect: 'postgres', name: 'bpchar' });
    expect(pgTypeToLogical('timestamp(3) with time zone')).toEqual({ kind: 'timestamptz', precision: 3 });
    expect(pgTypeToLogical('integer[]')).toEqual({ kind: 'array', element: { kind: 'int32' } });
  });

  it('stores enums as text (the mirror has no copy of the enum type)', () => {
    expect(pgTypeToLogical('mood', true)).toEqual({ kind: 'string' });
    expect(logicalToPgType(pgTypeToLogical('mood[]', true))).toBe('text[]');
  });

  it('keeps unknown types by name for PostgreSQL and as text elsewhere', () => {
    expect(pgTypeToLogical('geometry(Point,4326)')).toEqual({ kind: 'native', dialect: 'postgres', name: 'geometry(Point,4326)' });
    expect(logicalToPgType({ kind: 'native', dialect: 'mssql', name: 'hierarchyid' })).toBe('text');
  });

  it('maps types from other sources to the closest exact PostgreSQL type', () => {
    expect(logicalToPgType({ kind: 'int8' })).toBe('smallint');
    expect(logicalToPgType({ kind: 'money' })).toBe('numeric(19,4)');
    expect(logicalToPgType({ kind: 'timestamp', precision: 7 })).toBe('timestamp(6) without time zone');
    expect(logicalToPgType({ kind: 'binary', length: 16, fixed: true })).toBe('bytea');
  });
});
