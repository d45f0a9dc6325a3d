/**
 * Cuts a COPY text stream into byte-bounded chunks at line boundaries and feeds each chunk to its own COPY
 * (its own transaction, managed by the caller's plan). This is the hot path of population and change apply, so
 * it does no per-row work: it looks for newline bytes with Buffer's native search, passes the source's buffers
 * straight to the COPY stream, and decodes only the last line of a chunk (for the resume key).
 *
 * Memory stays flat: the source is pulled one buffer at a time and not pulled again until the COPY stream has
 * taken the buffer (write backpressure), so at most about one source buffer plus the COPY stream's
 * highWaterMark is held, whatever the chunk size.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { KeyValues } from '../core/types';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleFramer, type TupleBatch } from './binary-copy';

const NL = 0x0a;

/** The last complete line and the unfinished tail seen so far, as references into the written buffers. */
class LineTracker {
  private tail: Buffer[] = [];
  private last: Buffer[] = [];

  push(piece: Buffer): void {
    const nl = piece.lastIndexOf(NL);
    if (nl < 0) {
      this.tail.push(piece);
      return;
    }
    const prev = nl === 0 ? -1 : piece.lastIndexOf(NL, nl - 1);
    this.last = prev >= 0 ? [piece.subarray(prev + 1, nl)] : [...this.tail, piece.subarray(0, nl)];
    this.tail = nl + 1 < piece.length ? [piece.subarray(nl + 1)] : [];
  }

  get partial(): boolean {
    return this.tail.length > 0;
  }

  lastLine(): string | null {
    if (this.last.length === 0 && this.tail.length === 0) return null;
    return Buffer.concat(this.last).toString('utf8');
  }
}

/** What a finished chunk held. */
export interface ChunkInfo {
  /** Rows the server counted for this chunk's COPY. */
  rows: number;
  bytes: number;
  /** The chunk's last line, without its newline (COPY text, still encoded). */
  lastLine: string | null;
  /** A binary chunk's last key, read from its last tuple (text chunks leave it to the caller to decode lastLine). */
  lastKey?: KeyValues;
}

/** A COPY ... FROM STDIN stream as returned by `client.query(copyFrom(sql))`. */
export type CopyInStream = Writable & { rowCount: number };

export interface ChunkPlan {
  /** Begins a chunk: opens its transaction and its COPY, and returns the COPY stream. */
  open(): Promise<CopyInStream>;
  /** Ends a chunk whose COPY has completed (commits). `isLast` is true for the stream's final chunk. */
  close(chunk: ChunkInfo, isLast: boolean): Promise<void>;
  /** Called instead of any chunk when the stream held no data at all. */
  empty(): Promise<void>;
  /**
   * When true, a chunk is closed only once it is known whether more data follows (so `isLast` is exact, at the
   * cost of holding its transaction open until the next source buffer arrives). When false, `isLast` is always
   * false and chunks close as soon as their COPY completes.
   */
  needsLastFlag: boolean;
}

class CopySink {
  private error: unknown = null;
  private readonly lines = new LineTracker();
  bytes = 0;

  /** `text`: COPY text, whose lines are tracked; a binary sink is written whole tuples only. */
  constructor(
    private readonly stream: CopyInStream,
    private readonly text = true,
  ) {
    // Recorded rather than thrown: a listener must exist or an 'error' between our awaits would crash the process.
    stream.on('error', (err: unknown) => {
      this.error ??= err;
    });
  }

  async write(piece: Buffer): Promise<void> {
    if (this.error) throw this.error;
    this.bytes += piece.length;
    if (this.text) this.lines.push(piece);
    if (!this.stream.write(piece)) await once(this.stream, 'drain');
  }

  async finish(): Promise<ChunkInfo> {
    // A final line without its newline: COPY would take it, but the tracker wants every line terminated.
    if (this.text && this.lines.partial) await this.write(Buffer.from('\n'));
    if (this.error) throw this.error;
    this.stream.end();
    await finished(this.stream);
    return { rows: this.stream.rowCount, bytes: this.bytes, lastLine: this.lines.lastLine() };
  }

  /** Ends the COPY with CopyFail so the connection leaves COPY mode and can roll back. */
  async abort(reason: unknown): Promise<void> {
    // After a server error the server has already left COPY mode (and pg-copy-streams has let go of the
    // connection, so destroy() would try to send CopyFail on nothing); after completion there is nothing to end.
    if (this.error || this.stream.writableFinished) return;
    this.stream.destroy(reason instanceof Error ? reason : new Error(String(reason)));
    await finished(this.stream).catch(() => undefined);
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`COPY text stream produced a ${typeof chunk}, expected bytes or text`);
}

/**
 * Streams `source` through `plan` in chunks of at most about `limit` bytes: a chunk ends at the last line end
 * within the limit, or, when a single line is longer, at that line's end. Errors reading the source are passed
 * through `onSourceError` (so they can be told apart from the mirror's); on any error the open COPY is aborted
 * and the source destroyed before the error is rethrown (the plan's caller rolls back).
 */
export async function copyInChunks(
  source: Readable,
  limit: number,
  plan: ChunkPlan,
  onSourceError: (err: unknown) => unknown,
): Promise<void> {
  const max = Math.max(1, Math.floor(limit));
  let sink: CopySink | null = null;
  let pending: ChunkInfo | null = null;
  let opened = false;
  const it: AsyncIterator<unknown> = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await it.next();
      } catch (err) {
        throw onSourceError(err);
      }
      if (next.done) break;
      const buf = toBuffer(next.value);
      let pos = 0;
      while (pos < buf.length) {
        if (pending) {
          await plan.close(pending, false);
          pending = null;
        }
        if (!sink) {
          sink = new CopySink(await plan.open());
          opened = true;
        }
        const room = max - sink.bytes;
        if (buf.length - pos < room) {
          await sink.write(pos === 0 ? buf : buf.subarray(pos));
          break;
        }
        let cut = room > 0 ? buf.lastIndexOf(NL, pos + room - 1) : -1;
        if (cut < pos) cut = buf.indexOf(NL, pos + Math.max(room, 0));
        if (cut < 0) {
          // One long line, still open: the chunk ends with it, in a later buffer.
          await sink.write(buf.subarray(pos));
          break;
        }
        await sink.write(buf.subarray(pos, cut + 1));
        pos = cut + 1;
        const done: ChunkInfo = await sink.finish();
        sink = null;
        if (plan.needsLastFlag) pending = done;
        else await plan.close(done, false);
      }
    }
    if (sink) {
      const done: ChunkInfo = await sink.finish();
      sink = null;
      if (plan.needsLastFlag) pending = done;
      else await plan.close(done, false);
    }
    if (pending) {
      const last: ChunkInfo = pending;
      pending = null;
      await plan.close(last, true);
    } else if (!opened) {
      await plan.empty();
    }
  } catch (err) {
    if (sink) await sink.abort(err);
    await it.return?.().catch(() => undefined);
    throw err;
  }
}

/**
 * As copyInChunks, for a binary COPY stream (binary-copy.ts): the stream is cut into whole tuples, and each chunk
 * is a COPY of its own with the format's header and trailer around its tuples. A chunk ends at the first batch
 * boundary at or past `limit`; `keyOf` reads the resume key from the chunk's last tuple. `isLast` is always false.
 */
export async function copyBinaryInChunks(
  source: Readable,
  limit: number,
  plan: Omit<ChunkPlan, 'needsLastFlag'>,
  onSourceError: (err: unknown) => unknown,
  keyOf: (tuple: Buffer) => KeyValues,
): Promise<void> {
  const max = Math.max(1, Math.floor(limit));
  const framer = new BinaryTupleFramer();
  let sink: CopySink | null = null;
  let last: Buffer | null = null;
  let opened = false;
  const finish = async (open: CopySink): Promise<void> => {
    await open.write(BINARY_TRAILER);
    const done = await open.finish();
    sink = null;
    await plan.close({ ...done, ...(last ? { lastKey: keyOf(last) } : {}) }, false);
  };
  const it: AsyncIterator<unknown> = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      let batch: TupleBatch | null;
      try {
        const next = await it.next();
        if (next.done) {
          framer.end();
          break;
        }
        batch = framer.push(toBuffer(next.value));
      } catch (err) {
        throw onSourceError(err);
      }
      if (!batch) continue;
      if (!sink) {
        sink = new CopySink(await plan.open(), false);
        opened = true;
        await sink.write(BINARY_HEADER);
      }
      await sink.write(batch.data);
      last = batch.last;
      if (sink.bytes >= max) await finish(sink);
    }
    if (sink) await finish(sink);
    else if (!opened) await plan.empty();
  } catch (err) {
    if (sink) await (sink as CopySink).abort(err);
    await it.return?.().catch(() => undefined);
    throw err;
  }
}
