import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fitPgIdentifier, literalMssql, literalPg, quoteMssql, quotePg } from '../../src/core/identifiers';
import { MirrorError } from '../../src/core/errors';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('identifier quoting', () => {
  it('quotes PostgreSQL identifiers, doubling embedded quotes', () => {
    expect(quotePg('orders')).toBe('"orders"');
    expect(quotePg('we"ird; DROP TABLE x;--')).toBe('"we""ird; DROP TABLE x;--"');
    expect(quotePg('Mixed Case')).toBe('"Mixed Case"');
  });

  it('quotes SQL Server identifiers, doubling closing brackets', () => {
    expect(quoteMssql('orders')).toBe('[orders]');
    expect(quoteMssql('a]b; DROP TABLE x;--')).toBe('[a]]b; DROP TABLE x;--]');
  });

  it('refuses identifiers that cannot be quoted safely, with a typed error', () => {
    expect(() => quotePg('')).toThrow(MirrorError);
    expect(() => quotePg('a\u0000b')).toThrow(/NUL/);
    expect(() => quoteMssql('x'.repeat(129))).toThrow(/128/);
  });

  it('escapes string literals', () => {
    expect(literalPg("it's")).toBe("'it''s'");
    expect(literalMssql("it's")).toBe("N'it''s'");
  });

  it('fits long derived names into 63 bytes, keeping distinct names distinct', () => {
    const a = fitPgIdentifier('_shadow_' + 'x'.repeat(80) + 'a', sha);
    const b = fitPgIdentifier('_shadow_' + 'x'.repeat(80) + 'b', sha);
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
    expect(fitPgIdentifier('short', sha)).toBe('short');
    expect(Buffer.byteLength(fitPgIdentifier('é'.repeat(40), sha))).toBeLessThanOrEqual(63);
  });
});
