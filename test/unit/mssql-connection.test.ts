import { describe, expect, it } from 'vitest';
import { MirrorError } from '../../src/core/errors';
import { parseMssqlUrl, toMssqlConfig } from '../../src/mssql/connection';

describe('SQL Server URL', () => {
  it('reads user, password, host, port and database, decoding escapes', () => {
    const s = parseMssqlUrl('mssql://sa:p%40ss%3Aw%2Frd@db.example.com:14330/Sales%20DB');
    expect(s).toMatchObject({ user: 'sa', password: 'p@ss:w/rd', host: 'db.example.com', port: 14330, database: 'Sales DB' });
    expect(s.encrypt).toBe(true);
    expect(s.trustServerCertificate).toBe(false);
    expect(s.requestTimeoutMs).toBe(0);
  });

  it('accepts sqlserver:// and the query parameters', () => {
    const s = parseMssqlUrl('sqlserver://u:p@localhost/db?encrypt=false&trustServerCertificate=true&requestTimeout=30000&instanceName=SQLEXPRESS');
    expect(s).toMatchObject({ encrypt: false, trustServerCertificate: true, requestTimeoutMs: 30000, instanceName: 'SQLEXPRESS', port: undefined });
  });

  it('builds the driver config (default port 1433, none with an instance name)', () => {
    const c = toMssqlConfig(parseMssqlUrl('mssql://u:p@h/db?trustServerCertificate=true'), 7);
    expect(c).toMatchObject({ server: 'h', port: 1433, user: 'u', password: 'p', database: 'db', requestTimeout: 0 });
    expect(c.options).toMatchObject({ encrypt: true, trustServerCertificate: true });
    expect(c.pool?.max).toBe(7);
    expect(toMssqlConfig(parseMssqlUrl('mssql://u:p@h/db?instanceName=X')).port).toBeUndefined();
  });

  it.each([
    ['postgres://u:p@h/db', /mssql:\/\/ or sqlserver:\/\//],
    ['mssql://u:p@h', /one database/],
    ['mssql://u:p@h/a/b', /one database/],
    ['mssql://u:p@h/db?encrypt=maybe', /encrypt/],
    ['mssql://u:p@h/db?bogus=1', /unknown SQL Server URL parameter bogus/],
    ['mssql://u:p@h/db?requestTimeout=-1', /requestTimeout/],
    ['not a url', /not a valid URL/],
  ])('rejects %s with BadConfig, never echoing the password', (url, message) => {
    let caught: unknown;
    try {
      parseMssqlUrl(url);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MirrorError);
    expect((caught as MirrorError).type).toBe('BadConfig');
    expect((caught as MirrorError).message).toMatch(message);
    expect((caught as MirrorError).message).not.toContain('u:p@');
  });
});
