/**
 * The binary COPY framing a population cuts its chunks with: whole tuples out of any split of the stream, the
 * header and trailer recognised and dropped, a truncated stream refused, and the resume key read from a tuple.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleFramer, binaryCopyable, binaryKeyReader, type TupleBatch } from '../../src/postgres/binary-copy';
import type { TableSchema } from '../../src/core/types';

function field(value: Buffer | null): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(value === null ? -1 : value.length);
  return value === null ? len : Buffer.concat([len, value]);
}

function tuple(fields: (Buffer | null)[]): Buffer {
  const count = Buffer.alloc(2);
  count.writeInt16BE(fields.length);
  return Buffer.concat([count, ...fields.map(field)]);
}

function int64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
}

const tuples = Array.from({ length: 50 }, (_, i) =>
  tuple([int64(BigInt(i) - 3n), i % 4 === 0 ? null : Buffer.from(`row ${i} é`.repeat(i % 7)), Buffer.from('0123456789abcdef0123456789abcdef', 'hex')]),
);
const stream = Buffer.concat([BINARY_HEADER, ...tuples, BINARY_TRAILER]);

async function frame(pieces: Buffer[]): Promise<TupleBatch[]> {
  const framer = new BinaryTupleFramer();
  const out: TupleBatch[] = [];
  for await (const piece of Readable.from(pieces)) {
    const batch = framer.push(piece as Buffer);
    if (batch) out.push(batch);
  }
  framer.end();
  return out;
}

describe('BinaryTupleFramer', () => {
  it('gives the same whole tuples however the stream is split', async () => {
    for (const size of [1, 2, 3, 7, 19, 20, 64, 1000, stream.length]) {
      const pieces: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) pieces.push(stream.subarray(i, i + size));
      const batches = await frame(pieces);
      expect(Buffer.concat(batches.map((b) => b.data)).equals(Buffer.concat(tuples)), `pieces of ${size}`).toBe(true);
      expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(tuples.length);
      for (const b of batches) expect(b.data.subarray(b.data.length - b.last.length).equals(b.last)).toBe(true);
      expect(batches.at(-1)!.last.equals(tuples.at(-1)!)).toBe(true);
    }
  });

  it('joins a long value arriving in many small pieces once it is whole', async () => {
    const big = tuple([int64(1n), Buffer.alloc(4 * 1024 * 1024, 7), null]);
    const whole = Buffer.concat([BINARY_HEADER, tuples[1]!, big, tuples[2]!, BINARY_TRAILER]);
    const pieces: Buffer[] = [];
    for (let i = 0; i < whole.length; i += 1024) pieces.push(whole.subarray(i, i + 1024));
    const batches = await frame(pieces);
    expect(Buffer.concat(batches.map((b) => b.data)).equals(Buffer.concat([tuples[1]!, big, tuples[2]!]))).toBe(true);
    // Whole tuples only: the long one sits in one batch, not cut across two.
    expect(batches.some((b) => b.data.includes(big))).toBe(true);
  });

  it('refuses a stream that ends inside a tuple, without its trailer, or that is not binary COPY', async () => {
    await expect(frame([stream.subarray(0, stream.length - 5)])).rejects.toThrow(/inside a tuple|trailer/);
    await expect(frame([stream.subarray(0, stream.length - 2)])).rejects.toThrow(/trailer/);
    await expect(frame([Buffer.from('1\tone\n'.repeat(10))])).rejects.toThrow(/signature/);
  });
});

describe('binaryKeyReader', () => {
  const table: TableSchema = {
    name: 't',
    source: { schema: 'public', table: 't' },
    columns: [
      { name: 'note', type: { kind: 'string' }, nullable: true },
      { name: 'u', type: { kind: 'uuid' }, nullable: false },
      { name: 'small', type: { kind: 'int16' }, nullable: false },
      { name: 'id', type: { kind: 'int64' }, nullable: false },
      { name: 'n', type: { kind: 'int32' }, nullable: false },
    ],
    primaryKey: ['id', 'u', 'small', 'n'],
  };

  it('reads the key columns, in key order, as the text PostgreSQL prints them', () => {
    const s = Buffer.alloc(2);
    s.writeInt16BE(-7);
    const n = Buffer.alloc(4);
    n.writeInt32BE(-2147483648);
    const t = tuple([Buffer.from('x'), Buffer.from('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'hex'), s, int64(9007199254740993n), n]);
    expect(binaryKeyReader(table)(t)).toEqual(['9007199254740993', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '-7', '-2147483648']);
    expect(binaryKeyReader({ ...table, primaryKey: ['note'] })(t)).toEqual(['x']);
  });

  it('is offered only for tables whose every column and key the two servers agree on', () => {
    expect(binaryCopyable(table)).toBe(true);
    const withMoney = { ...table, columns: [...table.columns, { name: 'm', type: { kind: 'money' as const }, nullable: true }] };
    expect(binaryCopyable(withMoney)).toBe(false);
    const arrays = { ...table, columns: [...table.columns, { name: 'a', type: { kind: 'array' as const, element: { kind: 'string' as const } }, nullable: true }] };
    expect(binaryCopyable(arrays)).toBe(false);
    const dateKey: TableSchema = { ...table, columns: [...table.columns, { name: 'd', type: { kind: 'date' }, nullable: false }], primaryKey: ['d'] };
    expect(binaryCopyable(dateKey)).toBe(false);
    expect(binaryCopyable({ ...table, primaryKey: [] })).toBe(true);
    const oneChar = { ...table, columns: [...table.columns, { name: 'c', type: { kind: 'string' as const, length: 1, fixed: true }, nullable: true }] };
    expect(binaryCopyable(oneChar)).toBe(false);
  });
});
