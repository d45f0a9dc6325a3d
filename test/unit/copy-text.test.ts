import { describe, expect, it } from 'vitest';
import { decodeField, decodeLine, encodeField, encodeLine, lastLine, lastLineEnd } from '../../src/core/copy-text';

describe('COPY text codec', () => {
  const values = ['plain', '', 'tab\there', 'new\nline', 'cr\rhere', 'back\\slash', '\\N', 'é ✓ 😀', null];

  it('round-trips every awkward value', () => {
    for (const v of values) expect(decodeField(encodeField(v))).toBe(v);
    expect(decodeLine(encodeLine(values).slice(0, -1))).toEqual(values);
  });

  it('writes NULL as \\N and a literal backslash-N as \\\\N', () => {
    expect(encodeField(null)).toBe('\\N');
    expect(encodeField('\\N')).toBe('\\\\N');
  });

  it('decodes the escapes PostgreSQL may send (octal, hex, control characters)', () => {
    expect(decodeField('\\101\\x42\\b\\f\\v')).toBe('AB\b\f\v');
  });

  it('finds the last complete line of a chunk', () => {
    const buf = Buffer.from('1\ta\n2\tb\n3\tpart');
    expect(lastLineEnd(buf)).toBe(8);
    expect(lastLine(buf)).toBe('2\tb');
    expect(lastLine(Buffer.from('only\n'))).toBe('only');
    expect(lastLine(Buffer.from('no newline'))).toBeNull();
  });
});
