/**
 * PostgreSQL COPY text format, the row wire format between adapters
 * (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2): one row per line, fields separated by
 * a tab, NULL as `\N`, and backslash escapes for backslash, tab, newline and carriage return.
 */
import type { Readable } from 'node:stream';

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** Encodes one field value; null becomes `\N`. */
export function encodeField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export function encodeLine(values: (string | null)[]): string {
  return values.map(encodeField).join('\t') + '\n';
}

/** Decodes one raw field (between tabs) into its value. */
export function decodeField(raw: string): string | null {
  if (raw === '\\N') return null;
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x' && e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ESCAPES[e] ?? e;
  });
}

/** Splits one line (without its newline) into decoded field values. */
export function decodeLine(line: string): (string | null)[] {
  return line.split('\t').map(decodeField);
}

/**
 * Finds the end of the last complete line in a buffer (index after its `\n`), or -1. A raw newline byte only
 * ever ends a row in COPY text (newlines inside values are escaped), so this is safe on any chunk boundary.
 */
export function lastLineEnd(buf: Buffer): number {
  const i = buf.lastIndexOf(0x0a);
  return i < 0 ? -1 : i + 1;
}

/** The last complete line in `buf` (without newline), or null. */
export function lastLine(buf: Buffer): string | null {
  const end = lastLineEnd(buf);
  if (end < 0) return null;
  const start = end >= 2 ? buf.lastIndexOf(0x0a, end - 2) + 1 : 0;
  return buf.subarray(start, end - 1).toString('utf8');
}

/** COPY text lines (without their newline) of a byte stream, one chunk in memory at a time. */
export async function* readLines(input: Readable): AsyncGenerator<{ line: string; bytes: number }> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let data = rest.length ? Buffer.concat([rest, buf]) : buf;
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      yield { line: data.subarray(start, nl).toString('utf8'), bytes: nl - start + 1 };
      start = nl + 1;
    }
    rest = start < data.length ? Buffer.from(data.subarray(start)) : Buffer.alloc(0);
    data = Buffer.alloc(0);
  }
  if (rest.length) yield { line: rest.toString('utf8'), bytes: rest.length };
}
