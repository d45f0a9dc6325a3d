/**
 * PostgreSQL's binary COPY format, for a population whose both ends are PostgreSQL: neither server formats or
 * parses text (numeric, timestamps and bytea are the expensive ones), and the stream is smaller. The format
 * (PostgreSQL docs, COPY, "Binary Format") is a header, tuples, and a trailer; a tuple is a 16-bit field count
 * and per field a 32-bit length (-1: NULL) and that many bytes in the type's send/receive representation.
 *
 * Only types whose binary form both servers read and write alike are sent this way (`binaryCopyable`): built-in
 * scalar types that map to themselves. The source's stream is cut into whole tuples here, so that a chunk (one
 * COPY, one transaction at the mirror) can end at any tuple and the resume key can be read from its last one.
 */
import type { KeyValues, LogicalType, TableSchema } from '../core/types';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags (no OIDs), header extension length 0. */
export const BINARY_HEADER = Buffer.concat([SIGNATURE, Buffer.alloc(8)]);
/** The field count -1 that ends the data. */
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

/** Logical types whose PostgreSQL column type on the mirror is the source's own (types.ts), with a stable binary form. */
const COPYABLE = new Set<LogicalType['kind']>([
  'boolean', 'int16', 'int32', 'int64', 'decimal', 'float32', 'float64', 'string', 'binary', 'date', 'time', 'timetz',
  'timestamp', 'timestamptz', 'interval', 'uuid', 'json', 'jsonb',
]);
/** Key types whose binary form is decoded here into the text a resume key is given as. */
const KEY_DECODABLE = new Set<LogicalType['kind']>(['int16', 'int32', 'int64', 'uuid', 'string']);

/**
 * Whether a table can travel as binary COPY between two PostgreSQL servers. Left out: money (sent as numeric by
 * a cast), one-character fixed strings (see copyable), arrays (their binary form names the element type's oid, which an enum array does not share with the
 * mirror's text array), xml, and types kept by name (an extension type may not exist at the mirror).
 */
export function binaryCopyable(table: TableSchema): boolean {
  const keyKinds = table.primaryKey.map((k) => table.columns.find((c) => c.name === k)?.type.kind);
  return table.columns.every((c) => copyable(c.type)) && keyKinds.every((k) => k !== undefined && KEY_DECODABLE.has(k));
}

function copyable(type: LogicalType): boolean {
  // PostgreSQL's one-byte "char" reads as character(1) here, and its binary form (a raw byte, NUL included) is
  // not character(1)'s text: such a column travels as text.
  if (type.kind === 'string' && type.fixed && type.length === 1) return false;
  return COPYABLE.has(type.kind);
}

/** Whole tuples of a binary COPY stream: `data` holds `rows` of them, `last` is the final one. */
export interface TupleBatch {
  data: Buffer;
  last: Buffer;
  rows: number;
}

/**
 * Cuts a binary COPY stream (header, tuples, trailer) into batches of whole tuples, without the header and the
 * trailer: each buffer pushed gives at most one batch, referring to that buffer's bytes (only a tuple split across
 * two buffers is copied). Pulled by the chunk loop itself, so a source error surfaces only after every batch
 * before it was taken, as with COPY text.
 */
export class BinaryTupleFramer {
  /** The unfinished tail: pieces not yet joined, until they reach `need` bytes (a long value is joined once, not per piece). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private need = 0;
  private headerDone = false;
  private ended = false;

  push(chunk: Buffer): TupleBatch | null {
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.need) return null;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    if (!this.headerDone) {
      if (buf.length < 19) return this.keep(buf, 0, 19);
      if (!buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error('not a binary COPY stream (bad signature)');
      const end = 19 + buf.readInt32BE(15);
      if (buf.length < end) return this.keep(buf, 0, end);
      pos = end;
      this.headerDone = true;
    }
    if (this.ended) {
      if (pos < buf.length) throw new Error('binary COPY stream has data after its trailer');
      return null;
    }
    const start = pos;
    let lastStart = -1;
    let rows = 0;
    let need = 0;
    for (;;) {
      if (buf.length - pos < 2) {
        need = pos + 2;
        break;
      }
      const fields = buf.readInt16BE(pos);
      if (fields === -1) {
        this.ended = true;
        if (pos + 2 < buf.length) throw new Error('binary COPY stream has data after its trailer');
        break;
      }
      const next = tupleEnd(buf, pos, fields);
      if (next < 0) {
        need = -next;
        break;
      }
      lastStart = pos;
      pos = next;
      rows++;
    }
    if (!this.ended) this.keep(buf, pos, need);
    return rows > 0 ? { data: buf.subarray(start, pos), last: buf.subarray(lastStart, pos), rows } : null;
  }

  /** The source ended: it must have ended with the trailer. */
  end(): void {
    if (!this.ended || this.pendingBytes > 0) throw new Error('binary COPY stream ended inside a tuple or without its trailer');
  }

  /** Keeps `buf` from `from` on, to be framed once `need` bytes (counted in `buf`) have arrived. */
  private keep(buf: Buffer, from: number, need: number): null {
    // Copied: a reference would keep the whole input buffer alive for the sake of its last few bytes.
    if (from < buf.length) {
      this.pending = [Buffer.from(buf.subarray(from))];
      this.pendingBytes = buf.length - from;
      this.need = need - from;
    }
    return null;
  }
}

/**
 * Where the tuple at `pos` with `fields` fields ends; when the buffer holds only part of it, minus the length the
 * buffer must reach before the tuple can be measured further.
 */
function tupleEnd(buf: Buffer, pos: number, fields: number): number {
  let p = pos + 2;
  for (let f = 0; f < fields; f++) {
    if (buf.length - p < 4) return -(p + 4);
    const len = buf.readInt32BE(p);
    p += 4 + (len > 0 ? len : 0);
    if (p > buf.length) return -p;
  }
  return p;
}

/** Reads the key of one tuple as the text fields a resume key is given as (KEY_DECODABLE kinds only: see binaryCopyable). */
export function binaryKeyReader(table: TableSchema): (tuple: Buffer) => KeyValues {
  const keys = table.primaryKey.map((k) => {
    const index = table.columns.findIndex((c) => c.name === k);
    return { index, kind: table.columns[index]!.type.kind };
  });
  return (tuple) => {
    const offsets: number[] = [];
    let p = 2;
    const wanted = keys.reduce((m, k) => Math.max(m, k.index), -1);
    for (let f = 0; f <= wanted; f++) {
      offsets.push(p);
      const len = tuple.readInt32BE(p);
      p += 4 + (len > 0 ? len : 0);
    }
    return keys.map(({ index, kind }) => {
      const at = offsets[index]!;
      const len = tuple.readInt32BE(at);
      if (len < 0) return null;
      const v = tuple.subarray(at + 4, at + 4 + len);
      switch (kind) {
        case 'int16':
          return String(v.readInt16BE(0));
        case 'int32':
          return String(v.readInt32BE(0));
        case 'int64':
          return v.readBigInt64BE(0).toString();
        case 'uuid': {
          const h = v.toString('hex');
          return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
        }
        default:
          return v.toString('utf8');
      }
    });
  };
}
