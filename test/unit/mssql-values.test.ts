import { describe, expect, it } from 'vitest';
import type { LogicalType } from '../../src/core/types';
import { MirrorError } from '../../src/core/errors';
import {
  byteaToMssqlHex,
  copyFieldToMssql,
  moneyText,
  mssqlToCopyField,
  stripNul,
  stripXmlEncoding,
  timestamptzToIso,
} from '../../src/mssql/values';

const T = {
  bool: { kind: 'boolean' },
  int64: { kind: 'int64' },
  dec: { kind: 'decimal', precision: 38, scale: 10 },
  decText: { kind: 'decimal', precision: 50, scale: 2 },
  money: { kind: 'money' },
  f32: { kind: 'float32' },
  f64: { kind: 'float64' },
  str: { kind: 'string' },
  bin: { kind: 'binary' },
  date: { kind: 'date' },
  time: { kind: 'time', precision: 7 },
  ts: { kind: 'timestamp', precision: 7 },
  tstz: { kind: 'timestamptz', precision: 7 },
  uuid: { kind: 'uuid' },
  xml: { kind: 'xml' },
  hier: { kind: 'native', dialect: 'mssql', name: 'hierarchyid' },
  geo: { kind: 'native', dialect: 'mssql', name: 'geography' },
} satisfies Record<string, LogicalType>;

describe('SQL Server string forms → PostgreSQL COPY fields (source)', () => {
  it('maps NULL to NULL for every type', () => {
    for (const t of Object.values(T)) expect(mssqlToCopyField(t, null)).toBeNull();
  });

  it('bit becomes t / f and rejects anything else', () => {
    expect(mssqlToCopyField(T.bool, '1')).toBe('t');
    expect(mssqlToCopyField(T.bool, '0')).toBe('f');
    expect(() => mssqlToCopyField(T.bool, 'true')).toThrow(MirrorError);
  });

  it('keeps every digit of bigint and decimal(38,x)', () => {
    expect(mssqlToCopyField(T.int64, '-9223372036854775808')).toBe('-9223372036854775808');
    expect(mssqlToCopyField(T.dec, '1234567890123456789012345678.0123456789')).toBe('1234567890123456789012345678.0123456789');
    expect(mssqlToCopyField(T.money, '-922337203685477.5808')).toBe('-922337203685477.5808');
    expect(() => mssqlToCopyField(T.dec, '1e5')).toThrow(MirrorError);
  });

  it('prints float as the shortest text that reads back as the same double', () => {
    expect(mssqlToCopyField(T.f64, '1.0000000000000001E-1')).toBe('0.1');
    expect(mssqlToCopyField(T.f64, '1.7976931348623157E+308')).toBe('1.7976931348623157e+308');
    expect(Number(mssqlToCopyField(T.f64, '3.3333333333333331E-1'))).toBe(1 / 3);
    expect(mssqlToCopyField(T.f32, '1.00000001E-1')).toBe('1.00000001E-1');
  });

  it('turns binary hex into bytea hex', () => {
    expect(mssqlToCopyField(T.bin, '00FFA0')).toBe('\\x00ffa0');
    expect(mssqlToCopyField(T.bin, '')).toBe('\\x');
    expect(() => mssqlToCopyField(T.bin, '0G')).toThrow(MirrorError);
    expect(() => mssqlToCopyField(T.bin, 'ABC')).toThrow(MirrorError);
  });

  it('keeps datetime2(7) digits and datetimeoffset offsets', () => {
    expect(mssqlToCopyField(T.ts, '2024-02-29 23:59:59.1234567')).toBe('2024-02-29 23:59:59.1234567');
    expect(mssqlToCopyField(T.tstz, '2024-02-29 23:59:59.1234567 +05:30')).toBe('2024-02-29 23:59:59.1234567+05:30');
    expect(mssqlToCopyField(T.tstz, '0001-01-01 00:00:00 -14:00')).toBe('0001-01-01 00:00:00-14:00');
    expect(() => mssqlToCopyField(T.tstz, '2024-02-29 23:59:59')).toThrow(MirrorError);
    expect(mssqlToCopyField(T.time, '23:59:59.9999999')).toBe('23:59:59.9999999');
    expect(mssqlToCopyField(T.date, '0001-01-01')).toBe('0001-01-01');
  });

  it('lower-cases uniqueidentifier', () => {
    expect(mssqlToCopyField(T.uuid, '6F9619FF-8B86-D011-B42D-00C04FC964FF')).toBe('6f9619ff-8b86-d011-b42d-00c04fc964ff');
  });

  it('drops NUL characters from text (PostgreSQL text cannot hold them) and keeps the rest', () => {
    expect(mssqlToCopyField(T.str, 'a\u0000b\tc\\')).toBe('ab\tc\\');
    expect(stripNul('\u0000\u0000')).toBe('');
    expect(mssqlToCopyField(T.hier, '/1/2/')).toBe('/1/2/');
    expect(mssqlToCopyField(T.geo, 'SRID=4326;POINT (1 2)')).toBe('SRID=4326;POINT (1 2)');
  });

  it('refuses a value the driver did not deliver as a string', () => {
    expect(() => mssqlToCopyField(T.int64, 5)).toThrow(MirrorError);
  });
});

describe('PostgreSQL COPY fields → SQL Server string forms (mirror)', () => {
  it('maps every PostgreSQL boolean spelling', () => {
    for (const v of ['t', 'true', 'TRUE', 'y', 'on', '1']) expect(copyFieldToMssql(T.bool, v)).toBe('1');
    for (const v of ['f', 'false', 'n', 'off', '0']) expect(copyFieldToMssql(T.bool, v)).toBe('0');
    expect(() => copyFieldToMssql(T.bool, 'maybe')).toThrow(MirrorError);
  });

  it('passes integers and decimals exactly, rejects NaN / Infinity', () => {
    expect(copyFieldToMssql(T.int64, '9223372036854775807')).toBe('9223372036854775807');
    expect(() => copyFieldToMssql(T.int64, '1.5')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.dec, '-0.0000000001')).toBe('-0.0000000001');
    expect(() => copyFieldToMssql(T.dec, 'NaN')).toThrow(MirrorError);
    // A numeric wider than decimal(38) is stored as text, exactly as received.
    expect(copyFieldToMssql(T.decText, 'NaN')).toBe('NaN');
    expect(() => copyFieldToMssql(T.f64, 'Infinity')).toThrow(MirrorError);
    expect(() => copyFieldToMssql(T.f32, '-Infinity')).toThrow(MirrorError);
    expect(() => copyFieldToMssql(T.f64, 'NaN')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.f64, '1e+21')).toBe('1e+21');
  });

  it('reads PostgreSQL money text', () => {
    expect(moneyText('$1,234.56')).toBe('1234.56');
    expect(moneyText('-$1,234.56')).toBe('-1234.56');
    expect(moneyText('($5.00)')).toBe('-5.00');
    expect(copyFieldToMssql(T.money, '-922337203685477.5808')).toBe('-922337203685477.5808');
    expect(() => moneyText('abc')).toThrow(MirrorError);
  });

  it('turns bytea (hex and escape formats) into 0x hex', () => {
    expect(byteaToMssqlHex('\\x00ffa0')).toBe('0x00FFA0');
    expect(byteaToMssqlHex('\\x')).toBe('0x');
    expect(byteaToMssqlHex('a\\\\b\\000')).toBe('0x615C6200');
    expect(() => byteaToMssqlHex('\\xabc')).toThrow(MirrorError);
    expect(() => byteaToMssqlHex('\\9')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.bin, '\\xdeadbeef')).toBe('0xDEADBEEF');
  });

  it('writes timestamps as ISO 8601 with T, and refuses what SQL Server cannot hold', () => {
    expect(copyFieldToMssql(T.ts, '2024-02-29 23:59:59.123456')).toBe('2024-02-29T23:59:59.123456');
    expect(copyFieldToMssql(T.ts, '2024-02-29 23:59:59.1234567')).toBe('2024-02-29T23:59:59.1234567');
    expect(() => copyFieldToMssql(T.ts, 'infinity')).toThrow(MirrorError);
    expect(() => copyFieldToMssql(T.ts, '0044-03-15 00:00:00 BC')).toThrow(MirrorError);
    expect(() => copyFieldToMssql(T.ts, '12000-01-01 00:00:00')).toThrow(MirrorError);
    expect(() => copyFieldToMssql(T.date, '-infinity')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.date, '2024-02-29')).toBe('2024-02-29');
    expect(() => copyFieldToMssql(T.time, '24:00:00')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.time, '13:14:15.5')).toBe('13:14:15.5');
  });

  it('normalizes timestamptz offsets to +hh:mm', () => {
    expect(timestamptzToIso('2024-01-02 03:04:05.123456+02')).toBe('2024-01-02T03:04:05.123456+02:00');
    expect(timestamptzToIso('2024-01-02 03:04:05-03:30')).toBe('2024-01-02T03:04:05-03:30');
    expect(timestamptzToIso('2024-01-02 03:04:05.1234567 +05:30')).toBe('2024-01-02T03:04:05.1234567+05:30');
    expect(() => timestamptzToIso('1850-01-01 00:00:00+00:53:28')).toThrow(MirrorError);
    expect(() => timestamptzToIso('2024-01-02')).toThrow(MirrorError);
    expect(copyFieldToMssql(T.tstz, '2024-01-02 03:04:05+00')).toBe('2024-01-02T03:04:05+00:00');
  });

  it('drops the encoding of an XML declaration, nothing else', () => {
    expect(stripXmlEncoding('<?xml version="1.0" encoding="UTF-8"?><a/>')).toBe('<?xml version="1.0"?><a/>');
    expect(stripXmlEncoding("<?xml version='1.0' encoding='latin1' standalone='yes'?><a/>")).toBe("<?xml version='1.0' standalone='yes'?><a/>");
    expect(stripXmlEncoding('<a encoding="x"/>')).toBe('<a encoding="x"/>');
    expect(copyFieldToMssql(T.xml, '<a>é</a>')).toBe('<a>é</a>');
  });

  it('passes text, uuid and native forms unchanged; NULL stays NULL', () => {
    expect(copyFieldToMssql(T.str, "it's\ttab")).toBe("it's\ttab");
    expect(copyFieldToMssql(T.uuid, '6f9619ff-8b86-d011-b42d-00c04fc964ff')).toBe('6f9619ff-8b86-d011-b42d-00c04fc964ff');
    expect(copyFieldToMssql(T.hier, '/1/')).toBe('/1/');
    for (const t of Object.values(T)) expect(copyFieldToMssql(t, null)).toBeNull();
  });

  it('round-trips SQL Server → COPY → SQL Server without changing a value', () => {
    const cases: [LogicalType, string, string][] = [
      [T.bool, '1', '1'],
      [T.dec, '-12.3400000000', '-12.3400000000'],
      [T.money, '-1.2345', '-1.2345'],
      [T.bin, '0A0B', '0x0A0B'],
      [T.ts, '2024-02-29 23:59:59.1234567', '2024-02-29T23:59:59.1234567'],
      [T.tstz, '2024-02-29 23:59:59.1234567 -08:00', '2024-02-29T23:59:59.1234567-08:00'],
      [T.uuid, 'ABCDEF00-0000-0000-0000-000000000001', 'abcdef00-0000-0000-0000-000000000001'],
    ];
    for (const [type, server, back] of cases) expect(copyFieldToMssql(type, mssqlToCopyField(type, server))).toBe(back);
  });
});
