import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readLines } from '../../src/mssql/stream';

async function collect(chunks: (string | Buffer)[]): Promise<{ line: string; bytes: number }[]> {
  const out: { line: string; bytes: number }[] = [];
  for await (const l of readLines(Readable.from(chunks, { objectMode: false }))) out.push(l);
  return out;
}

describe('readLines', () => {
  it('splits lines across chunk boundaries, including inside a multi-byte character', async () => {
    const text = 'a\tb\nçé\t\\N\nlast\n';
    const buf = Buffer.from(text, 'utf8');
    // Split in the middle of 'ç' (two bytes).
    const cut = buf.indexOf(0xc3) + 1;
    const lines = await collect([buf.subarray(0, cut), buf.subarray(cut)]);
    expect(lines.map((l) => l.line)).toEqual(['a\tb', 'çé\t\\N', 'last']);
    expect(lines.reduce((n, l) => n + l.bytes, 0)).toBe(buf.length);
  });

  it('yields a last line without a newline, and nothing for an empty stream', async () => {
    expect((await collect(['x\ny'])).map((l) => l.line)).toEqual(['x', 'y']);
    expect(await collect([])).toEqual([]);
  });

  it('keeps empty lines (a one-column row holding an empty string)', async () => {
    expect((await collect(['\n\n'])).map((l) => l.line)).toEqual(['', '']);
  });
});
