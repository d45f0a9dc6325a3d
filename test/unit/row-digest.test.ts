/**
 * The canonical digest form: the same value as PostgreSQL prints it and as the SQL Server adapters read it back
 * (CONVERT styles through mssqlToCopyField) has one canonical text; different values keep different ones.
 */
import { describe, expect, it } from 'vitest';
import { canonicalField, canonicalInstant, canonicalNumber, canonicalRowHash, DigestAccumulator, hash64 } from '../../src/core/row-digest';
import type { LogicalType } from '../../src/core/types';
import { mssqlToCopyField } from '../../src/mssql/values';

/** [type, PostgreSQL's text, SQL Server's raw string as readExpr returns it] of one value. */
const SAME: [LogicalType, string, string][] = [
  [{ kind: 'boolean' }, 't', '1'],
  [{ kind: 'int32' }, '-42', '-42'],
  [{ kind: 'decimal', precision: 10, scale: 4 }, '1.5000', '1.5000'],
  [{ kind: 'decimal' }, '1.5', '1.5000000000'],
  [{ kind: 'money' }, '1234.50', '1234.5000'],
  [{ kind: 'float64' }, '0.1', '1.0000000000000001E-1'],
  [{ kind: 'float64' }, '1e+20', '1.0000000000000000E+20'],
  [{ kind: 'float32' }, '0.1', '1.00000001E-1'],
  [{ kind: 'string', length: 4, fixed: true }, 'ab', 'ab  '],
  [{ kind: 'binary' }, '\\xdeadbeef', 'DEADBEEF'],
  [{ kind: 'time', precision: 6 }, '10:00:01', '10:00:01.000000'],
  [{ kind: 'time', precision: 6 }, '10:00:01.5', '10:00:01.500000'],
  [{ kind: 'timestamp', precision: 6 }, '2021-06-01 12:00:00', '2021-06-01 12:00:00.000000'],
  [{ kind: 'timestamp', precision: 3 }, '2021-06-01 12:00:00.123', '2021-06-01 12:00:00.123'],
  [{ kind: 'timestamptz', precision: 6 }, '2024-01-02 12:00:00.5+00', '2024-01-02 14:00:00.5000000 +02:00'],
  [{ kind: 'timestamptz', precision: 6 }, '2024-01-02 00:30:00+00', '2024-01-01 23:30:00.0000000 -01:00'],
  [{ kind: 'uuid' }, '0f8fad5b-d9cb-469f-a165-70867728950e', '0F8FAD5B-D9CB-469F-A165-70867728950E'],
  [{ kind: 'string' }, 'tab\there', 'tab\there'],
];

describe('canonicalField', () => {
  it.each(SAME)('%j: PostgreSQL %s and SQL Server %s are one value', (type, pg, ms) => {
    const fromSqlServer = mssqlToCopyField(type, ms);
    expect(canonicalField(type, fromSqlServer)).toBe(canonicalField(type, pg));
  });

  it('keeps different values apart', () => {
    expect(canonicalField({ kind: 'decimal' }, '1.5')).not.toBe(canonicalField({ kind: 'decimal' }, '1.51'));
    expect(canonicalField({ kind: 'timestamp' }, '2021-06-01 12:00:00.000001')).not.toBe(canonicalField({ kind: 'timestamp' }, '2021-06-01 12:00:00'));
    expect(canonicalField({ kind: 'timestamptz' }, '2024-01-02 12:00:00+00')).not.toBe(canonicalField({ kind: 'timestamptz' }, '2024-01-02 12:00:00+01'));
    expect(canonicalField({ kind: 'float64' }, '0.1')).not.toBe(canonicalField({ kind: 'float64' }, '0.10000000000000002'));
    expect(canonicalField({ kind: 'string' }, 'ab ')).not.toBe(canonicalField({ kind: 'string' }, 'ab'));
    expect(canonicalField({ kind: 'boolean' }, 't')).not.toBe(canonicalField({ kind: 'boolean' }, 'f'));
  });

  it('normalises numbers without changing them', () => {
    expect(canonicalNumber('-001.500')).toBe('-1.5');
    expect(canonicalNumber('-0.000')).toBe('0');
    expect(canonicalNumber('+7')).toBe('7');
    expect(canonicalNumber('.5')).toBe('0.5');
    expect(canonicalNumber('NaN')).toBe('NaN');
    expect(canonicalNumber('123456789012345678901234567890.123')).toBe('123456789012345678901234567890.123');
  });

  it('reads a timestamp with an offset as its UTC instant, across a year boundary and with odd offsets', () => {
    expect(canonicalInstant('2024-01-01 01:00:00+05:30')).toBe('2023-12-31 19:30:00+00');
    expect(canonicalInstant('0001-01-01 00:00:00+00')).toBe('0001-01-01 00:00:00+00');
    expect(canonicalInstant('not a time')).toBe('not a time');
  });

  it('leaves NULL alone and text it cannot read as it is', () => {
    expect(canonicalField({ kind: 'int32' }, null)).toBeNull();
    expect(canonicalField({ kind: 'float64' }, 'abc')).toBe('abc');
  });
});

describe('canonicalRowHash', () => {
  const types: LogicalType[] = [{ kind: 'int32' }, { kind: 'string' }, { kind: 'string' }];

  it('hashes equal values alike, whichever database printed them', () => {
    const t: LogicalType[] = [{ kind: 'int32' }, { kind: 'timestamp', precision: 6 }];
    expect(canonicalRowHash(t, ['1', '2021-06-01 12:00:00'])).toBe(canonicalRowHash(t, ['1', '2021-06-01 12:00:00.000000']));
  });

  it('tells NULL, the empty string and values that could pass for separators apart', () => {
    const hashes = [
      canonicalRowHash(types, ['1', null, '']),
      canonicalRowHash(types, ['1', '', null]),
      canonicalRowHash(types, ['1', '', '']),
      canonicalRowHash(types, ['1', 'a;', 'b']),
      canonicalRowHash(types, ['1', 'a', ';b']),
      canonicalRowHash(types, ['1', '-;', null]),
      canonicalRowHash(types, ['1', null, '-;']),
    ];
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('is a signed 64-bit value that depends on every character', () => {
    const a = hash64('abc');
    expect(a).toBeGreaterThanOrEqual(-(2n ** 63n));
    expect(a).toBeLessThan(2n ** 63n);
    expect(hash64('abd')).not.toBe(a);
    expect(hash64('abc')).toBe(a);
  });

  it('sums into digests that do not depend on the order rows come in, and count a duplicate row twice', () => {
    const rows = [['1', 'a', 'x'], ['2', 'b', null], ['3', 'c', 'z']].map((r) => canonicalRowHash(types, r));
    const forward = new DigestAccumulator();
    const backward = new DigestAccumulator();
    for (const h of rows) forward.add(h);
    for (const h of [...rows].reverse()) backward.add(h);
    expect(forward.digest()).toEqual(backward.digest());
    const twice = new DigestAccumulator();
    for (const h of [...rows, rows[0]!]) twice.add(h);
    expect(twice.digest()).not.toEqual(forward.digest());
    expect(twice.digest().rows).toBe(4);
  });
});
