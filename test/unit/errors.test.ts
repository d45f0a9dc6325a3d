import { describe, expect, it } from 'vitest';
import { FailureType, MirrorError, redact, toMirrorError } from '../../src/core/errors';

describe('typed failures', () => {
  it('puts tenant, side, table and operation into the message', () => {
    const err = new MirrorError(FailureType.MirrorWriteFailed, 'value too long', { tenant: 'acme', side: 'mirror', table: 'orders', operation: 'apply changes' });
    expect(err.message).toBe('value too long [tenant acme, mirror, table orders, apply changes]');
    expect(err.name).toBe('MirrorWriteFailed');
    expect(err.retryable).toBe(true);
    expect(new MirrorError(FailureType.AuthFailed, 'x').retryable).toBe(false);
  });

  it('classifies driver errors by code', () => {
    const withCode = (code: string, message = 'boom') => Object.assign(new Error(message), { code });
    expect(toMirrorError(withCode('28P01'), {}, FailureType.Unavailable).type).toBe('AuthFailed');
    expect(toMirrorError(withCode('3D000'), {}, FailureType.Unavailable).type).toBe('BadConfig');
    expect(toMirrorError(withCode('ECONNREFUSED'), {}, FailureType.MirrorWriteFailed).type).toBe('Unavailable');
    expect(toMirrorError(withCode('57P01'), {}, FailureType.MirrorWriteFailed).type).toBe('Unavailable');
    // node-postgres's words for a statement on a client whose connection had already failed.
    const dead = new Error('Client has encountered a connection error and is not queryable');
    expect(toMirrorError(dead, { table: 't' }, FailureType.MirrorWriteFailed).type).toBe('Unavailable');
    expect(toMirrorError(withCode('ELOGIN'), {}, FailureType.Unavailable).type).toBe('AuthFailed');
    expect(toMirrorError(withCode('22001'), {}, FailureType.MirrorWriteFailed).type).toBe('MirrorWriteFailed');
  });

  it('a lock timeout (ours) is a busy table on its side, retried later', () => {
    const withNumber = (number: number) => Object.assign(new Error('Lock request time out period exceeded.'), { number });
    expect(toMirrorError(withNumber(1222), { side: 'mirror', table: 't' }, FailureType.MirrorWriteFailed).type).toBe('MirrorBusy');
    expect(toMirrorError(withNumber(1222), { side: 'source', table: 't' }, FailureType.SourceReadFailed).type).toBe('SourceBusy');
    const pgLock = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
    expect(toMirrorError(pgLock, { side: 'mirror' }, FailureType.MirrorWriteFailed).type).toBe('MirrorBusy');
  });

  it('never lets a password in a URL through', () => {
    expect(redact('connect to postgres://app:s3cr3t@db:5432/x failed')).toBe('connect to postgres://app:***@db:5432/x failed');
    expect(redact('mssql://sa:P%40ss@h/db')).toBe('mssql://sa:***@h/db');
    const err = toMirrorError(new Error('bad url postgres://u:hunter2@h/db'), { tenant: 't' }, FailureType.Unavailable);
    expect(err.message).not.toContain('hunter2');
  });
});
