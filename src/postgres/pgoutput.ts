/**
 * A parser for the messages of PostgreSQL's `pgoutput` logical decoding plugin, protocol version 1, as returned
 * one per row by `pg_logical_slot_peek_binary_changes` (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
 * Only what change tracking needs: transaction boundaries (the xid and commit time of a Begin, the LSNs of a
 * Commit), relation descriptions (oid and column names) and the tuples of Insert, Update and Delete, and the oids
 * of a Truncate. Other messages (Origin, Type, logical messages) are returned as `other`.
 *
 * Tuple values are kept as the bytes the server sent (the text output of each column, converted to the client
 * encoding of the stream): they go back into the database, which converts them itself. Tuples are located, not
 * copied (Tuple): a busy stream carries whole rows, and only key columns are wanted.
 */

/** A column value in a tuple: its text bytes, SQL NULL, or a TOASTed value the update did not change (not sent). */
export type TupleValue = Buffer | null | typeof UNCHANGED_TOAST;

export const UNCHANGED_TOAST = Symbol('unchanged toast');

const NULL_VALUE = -1;
const UNCHANGED_VALUE = -2;

/**
 * A tuple's column values, located but not copied: `value(i)` is a view into the message, valid as long as the
 * message buffer is (copy what must outlive it). Only the columns asked for cost anything.
 */
export class Tuple {
  constructor(
    private readonly buf: Buffer,
    /** Per column: start and end offsets, or NULL_VALUE / UNCHANGED_VALUE as start. */
    private readonly offsets: Int32Array,
  ) {}

  get length(): number {
    return this.offsets.length / 2;
  }

  value(i: number): TupleValue {
    if (i < 0 || i >= this.length) return null;
    const start = this.offsets[2 * i]!;
    if (start === NULL_VALUE) return null;
    if (start === UNCHANGED_VALUE) return UNCHANGED_TOAST;
    return this.buf.subarray(start, this.offsets[2 * i + 1]);
  }

  values(): TupleValue[] {
    return Array.from({ length: this.length }, (_, i) => this.value(i));
  }
}

export interface RelationColumn {
  /** The column's name, in the stream's client encoding. */
  name: Buffer;
  /** Part of the relation's replica identity (every column under REPLICA IDENTITY FULL). */
  key: boolean;
  typeOid: number;
  typmod: number;
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: bigint; commitTime: bigint; xid: number }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  | { tag: 'relation'; relid: number; schema: Buffer; name: Buffer; replicaIdentity: string; columns: RelationColumn[] }
  | { tag: 'insert'; relid: number; newTuple: Tuple }
  /** `old` is the old key ('K', when the key changed) or the whole old row ('O', REPLICA IDENTITY FULL). */
  | { tag: 'update'; relid: number; old: { kind: 'K' | 'O'; tuple: Tuple } | null; newTuple: Tuple }
  | { tag: 'delete'; relid: number; old: { kind: 'K' | 'O'; tuple: Tuple } }
  | { tag: 'truncate'; relids: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'other'; type: string };

/** A message the parser cannot read: a bug or a protocol it does not speak, never something to skip. */
export class PgOutputError extends Error {}

class Reader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new PgOutputError(`pgoutput message truncated at byte ${this.pos} (needs ${n} more of ${this.buf.length})`);
  }

  byte(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }

  char(): string {
    return String.fromCharCode(this.byte());
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A NUL-terminated string, as bytes. */
  cstring(): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new PgOutputError(`pgoutput string without terminator at byte ${this.pos}`);
    const s = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return s;
  }

  /** Skips `n` bytes and returns where they started. */
  skip(n: number): number {
    if (n < 0) throw new PgOutputError(`negative length ${n} at byte ${this.pos}`);
    this.need(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  get buffer(): Buffer {
    return this.buf;
  }

  done(): void {
    if (this.pos !== this.buf.length) throw new PgOutputError(`pgoutput message has ${this.buf.length - this.pos} unread bytes`);
  }
}

function tupleData(r: Reader): Tuple {
  const n = r.int16();
  const offsets = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    if (kind === 0x6e /* n */) offsets[2 * i] = NULL_VALUE;
    else if (kind === 0x75 /* u */) offsets[2 * i] = UNCHANGED_VALUE;
    else if (kind === 0x74 /* t */) {
      const len = r.int32();
      const at = r.skip(len);
      offsets[2 * i] = at;
      offsets[2 * i + 1] = at + len;
    }
    // 'b' only with the binary option, which is never requested.
    else throw new PgOutputError(`pgoutput tuple column of kind ${JSON.stringify(String.fromCharCode(kind))}`);
  }
  return new Tuple(r.buffer, offsets);
}

/** Parses one pgoutput (protocol version 1) message. */
export function parsePgOutput(message: Buffer): PgOutputMessage {
  const r = new Reader(message);
  const type = r.char();
  let out: PgOutputMessage;
  switch (type) {
    case 'B':
      out = { tag: 'begin', finalLsn: r.uint64(), commitTime: r.int64(), xid: r.uint32() };
      break;
    case 'C':
      r.byte(); // flags, unused
      out = { tag: 'commit', commitLsn: r.uint64(), endLsn: r.uint64(), commitTime: r.int64() };
      break;
    case 'R': {
      const relid = r.uint32();
      const schema = r.cstring();
      const name = r.cstring();
      const replicaIdentity = r.char();
      const n = r.int16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.byte();
        columns.push({ key: (flags & 1) === 1, name: r.cstring(), typeOid: r.uint32(), typmod: r.int32() });
      }
      out = { tag: 'relation', relid, schema, name, replicaIdentity, columns };
      break;
    }
    case 'I': {
      const relid = r.uint32();
      if (r.char() !== 'N') throw new PgOutputError('pgoutput Insert without a new tuple');
      out = { tag: 'insert', relid, newTuple: tupleData(r) };
      break;
    }
    case 'U': {
      const relid = r.uint32();
      let kind = r.char();
      let old: { kind: 'K' | 'O'; tuple: Tuple } | null = null;
      if (kind === 'K' || kind === 'O') {
        old = { kind, tuple: tupleData(r) };
        kind = r.char();
      }
      if (kind !== 'N') throw new PgOutputError(`pgoutput Update with submessage ${JSON.stringify(kind)}`);
      out = { tag: 'update', relid, old, newTuple: tupleData(r) };
      break;
    }
    case 'D': {
      const relid = r.uint32();
      const kind = r.char();
      if (kind !== 'K' && kind !== 'O') throw new PgOutputError(`pgoutput Delete with submessage ${JSON.stringify(kind)}`);
      out = { tag: 'delete', relid, old: { kind, tuple: tupleData(r) } };
      break;
    }
    case 'T': {
      const n = r.int32();
      const options = r.byte();
      const relids: number[] = [];
      for (let i = 0; i < n; i++) relids.push(r.uint32());
      out = { tag: 'truncate', relids, cascade: (options & 1) === 1, restartIdentity: (options & 2) === 2 };
      break;
    }
    case 'O': // origin of the transaction
    case 'Y': // a type's name
    case 'M': // a logical decoding message
      return { tag: 'other', type };
    default:
      throw new PgOutputError(`unknown pgoutput message type ${JSON.stringify(type)}`);
  }
  r.done();
  return out;
}

/** pg_lsn text (`16/B374D848`) of an LSN, and back. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new PgOutputError(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/**
 * The 64-bit (xid8) form of a 32-bit xid: the full xid with those low 32 bits closest to `near` (a full xid read
 * around the same time). A decoded transaction is always within 2^31 xids of any xid current while it ran
 * (wraparound protection), so this is exact — for transactions that began before `near` was read and after.
 */
export function fullXid(xid: number, near: bigint): bigint {
  const low = BigInt(xid >>> 0);
  const base = (near >> 32n) << 32n;
  let best = base + low;
  for (const candidate of [best - 0x100000000n, best + 0x100000000n]) {
    if (candidate >= 0n && abs(candidate - near) < abs(best - near)) best = candidate;
  }
  if (best < 0n) throw new PgOutputError(`xid ${xid} has no full form near ${near}`);
  return best;
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}
