import { describe, expect, it } from 'vitest';
import type { LogicalType } from '../../src/core/types';
import {
  declarationFacts,
  formatMssqlType,
  logicalToMssqlType,
  mssqlTypeToLogical,
  normalizeForMssql,
  type MssqlColumnFacts,
} from '../../src/mssql/types';

const f = (typeName: string, maxLength = 0, precision = 0, scale = 0): MssqlColumnFacts => ({ typeName, maxLength, precision, scale });

describe('SQL Server → logical types', () => {
  it.each<[MssqlColumnFacts, LogicalType]>([
    [f('bit'), { kind: 'boolean' }],
    [f('tinyint'), { kind: 'int8' }],
    [f('smallint'), { kind: 'int16' }],
    [f('int'), { kind: 'int32' }],
    [f('bigint'), { kind: 'int64' }],
    [f('decimal', 17, 38, 6), { kind: 'decimal', precision: 38, scale: 6 }],
    [f('numeric', 9, 10, 0), { kind: 'decimal', precision: 10, scale: 0 }],
    [f('money', 8, 19, 4), { kind: 'money' }],
    [f('smallmoney', 4, 10, 4), { kind: 'decimal', precision: 10, scale: 4 }],
    [f('real', 4, 24), { kind: 'float32' }],
    [f('float', 8, 53), { kind: 'float64' }],
    [f('float', 4, 24), { kind: 'float32' }],
    [f('char', 10), { kind: 'string', length: 10, fixed: true }],
    [f('nchar', 20), { kind: 'string', length: 10, fixed: true }],
    [f('varchar', 50), { kind: 'string', length: 50 }],
    [f('varchar', -1), { kind: 'string' }],
    [f('nvarchar', 100), { kind: 'string', length: 50 }],
    [f('nvarchar', -1), { kind: 'string' }],
    [f('text', 16), { kind: 'string' }],
    [f('ntext', 16), { kind: 'string' }],
    [f('sysname', 256), { kind: 'string', length: 128 }],
    [f('binary', 16), { kind: 'binary', length: 16, fixed: true }],
    [f('varbinary', 100), { kind: 'binary', length: 100 }],
    [f('varbinary', -1), { kind: 'binary' }],
    [f('image', 16), { kind: 'binary' }],
    [f('timestamp', 8), { kind: 'binary', length: 8, fixed: true }],
    [f('date', 3, 10, 0), { kind: 'date' }],
    [f('time', 5, 16, 7), { kind: 'time', precision: 7 }],
    [f('datetime', 8, 23, 3), { kind: 'timestamp', precision: 3 }],
    [f('smalldatetime', 4, 16, 0), { kind: 'timestamp', precision: 0 }],
    [f('datetime2', 8, 27, 7), { kind: 'timestamp', precision: 7 }],
    [f('datetimeoffset', 10, 34, 7), { kind: 'timestamptz', precision: 7 }],
    [f('uniqueidentifier', 16), { kind: 'uuid' }],
    [f('xml', -1), { kind: 'xml' }],
    [f('sql_variant', 8016), { kind: 'native', dialect: 'mssql', name: 'sql_variant' }],
    [f('hierarchyid', 892), { kind: 'native', dialect: 'mssql', name: 'hierarchyid' }],
    [f('geography', -1), { kind: 'native', dialect: 'mssql', name: 'geography' }],
    [f('geometry', -1), { kind: 'native', dialect: 'mssql', name: 'geometry' }],
  ])('%o', (facts, expected) => {
    expect(mssqlTypeToLogical(facts)).toEqual(expected);
  });
});

describe('logical → SQL Server column types', () => {
  it.each<[LogicalType, string]>([
    [{ kind: 'boolean' }, 'bit'],
    [{ kind: 'int8' }, 'tinyint'],
    [{ kind: 'int64' }, 'bigint'],
    [{ kind: 'decimal', precision: 12, scale: 3 }, 'decimal(12,3)'],
    [{ kind: 'decimal' }, 'decimal(38,10)'],
    [{ kind: 'decimal', precision: 60, scale: 2 }, 'nvarchar(1002)'],
    [{ kind: 'money' }, 'money'],
    [{ kind: 'float32' }, 'real'],
    [{ kind: 'float64' }, 'float'],
    [{ kind: 'string' }, 'nvarchar(max)'],
    [{ kind: 'string', length: 40 }, 'nvarchar(40)'],
    [{ kind: 'string', length: 4001 }, 'nvarchar(max)'],
    [{ kind: 'string', length: 3, fixed: true }, 'nchar(3)'],
    [{ kind: 'binary' }, 'varbinary(max)'],
    [{ kind: 'binary', length: 8, fixed: true }, 'binary(8)'],
    [{ kind: 'binary', length: 9000 }, 'varbinary(max)'],
    [{ kind: 'date' }, 'date'],
    [{ kind: 'time' }, 'time(7)'],
    [{ kind: 'time', precision: 6 }, 'time(6)'],
    [{ kind: 'timestamp', precision: 3 }, 'datetime2(3)'],
    [{ kind: 'timestamptz' }, 'datetimeoffset(7)'],
    [{ kind: 'timetz', precision: 6 }, 'nvarchar(40)'],
    [{ kind: 'interval' }, 'nvarchar(100)'],
    [{ kind: 'uuid' }, 'uniqueidentifier'],
    [{ kind: 'json' }, 'nvarchar(max)'],
    [{ kind: 'jsonb' }, 'nvarchar(max)'],
    [{ kind: 'xml' }, 'xml'],
    [{ kind: 'array', element: { kind: 'int32' } }, 'nvarchar(max)'],
    [{ kind: 'native', dialect: 'mssql', name: 'hierarchyid' }, 'hierarchyid'],
    [{ kind: 'native', dialect: 'mssql', name: 'sql_variant' }, 'sql_variant'],
    [{ kind: 'native', dialect: 'mssql', name: 'something_else' }, 'nvarchar(max)'],
    [{ kind: 'native', dialect: 'postgres', name: 'inet' }, 'nvarchar(max)'],
  ])('%o → %s', (type, expected) => {
    expect(logicalToMssqlType(type)).toBe(expected);
  });

  it('formats catalog facts exactly as it declares them, so existing tables compare by equality', () => {
    const decls = ['bit', 'tinyint', 'bigint', 'decimal(12,3)', 'decimal(38,10)', 'money', 'real', 'float', 'nvarchar(max)',
      'nvarchar(40)', 'nchar(3)', 'varbinary(max)', 'binary(8)', 'varbinary(16)', 'date', 'time(6)', 'datetime2(3)',
      'datetimeoffset(7)', 'uniqueidentifier', 'xml', 'hierarchyid', 'geography', 'sql_variant'];
    for (const d of decls) expect(formatMssqlType(declarationFacts(d))).toBe(d);
    expect(formatMssqlType(f('numeric', 9, 10, 2))).toBe('decimal(10,2)');
    expect(formatMssqlType(f('varchar', -1))).toBe('varchar(max)');
    expect(formatMssqlType(f('char', 5))).toBe('char(5)');
  });

  it('normalizes a type to what a SQL Server mirror stores', () => {
    expect(normalizeForMssql({ kind: 'json' })).toEqual({ kind: 'string' });
    expect(normalizeForMssql({ kind: 'timestamp' })).toEqual({ kind: 'timestamp', precision: 7 });
    expect(normalizeForMssql({ kind: 'string', length: 10 })).toEqual({ kind: 'string', length: 10 });
    expect(normalizeForMssql({ kind: 'decimal', precision: 5, scale: 2 })).toEqual({ kind: 'decimal', precision: 5, scale: 2 });
    expect(normalizeForMssql({ kind: 'int8' })).toEqual({ kind: 'int8' });
  });

  it('maps every SQL Server type to a mirror type that maps back to the same logical type (SQL Server → SQL Server)', () => {
    const exact = [f('bit'), f('bigint'), f('decimal', 17, 38, 6), f('money', 8, 19, 4), f('real', 4, 24), f('float', 8, 53),
      f('nvarchar', 100), f('nchar', 20), f('varbinary', 100), f('binary', 16), f('date'), f('time', 5, 16, 7),
      f('datetime2', 8, 27, 7), f('datetimeoffset', 10, 34, 7), f('uniqueidentifier'), f('xml', -1), f('hierarchyid'), f('geography', -1)];
    for (const facts of exact) {
      const logical = mssqlTypeToLogical(facts);
      expect(mssqlTypeToLogical(declarationFacts(logicalToMssqlType(logical)))).toEqual(logical);
    }
  });
});
