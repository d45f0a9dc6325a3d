/**
 * Streaming with bounded memory, both ways.
 *
 * Out of SQL Server: the driver's stream mode through `request.toReadableStream()`, which pauses the request when
 * the object stream's buffer is full and resumes it when read, so rows are pulled from the server only as fast as
 * the consumer takes COPY text lines.
 *
 * Into SQL Server: `readLines` splits a COPY text stream into lines without holding more than one chunk.
 */
import { Readable } from 'node:stream';
import sql from 'mssql';

export interface QueryParam {
  name: string;
  type: sql.ISqlType | (() => sql.ISqlType);
  value: string | null;
}

/** How many rows the driver may buffer ahead of the consumer (objects, not bytes). */
const ROW_HIGH_WATER_MARK = 512;
/** Lines are handed on in strings of about this size rather than one by one. */
const CHUNK_CHARS = 64 * 1024;

export interface RowStreamHandle {
  /** The COPY text lines. */
  readable: Readable;
  /** Settles when the request has finished on the server (also after an early destroy: it is drained). */
  finished: Promise<void>;
  /** For a stream that will never be read: settles `finished` if its request never started. */
  abandon(): void;
}

export interface StreamRowsOptions {
  makeRequest: () => sql.Request;
  /** The statement, known once `prepare` has run. */
  text: () => string;
  params: QueryParam[];
  toLine: (row: unknown[]) => string;
  /** Runs first, when the stream is first read (waiting for the connection, a validation query...). */
  prepare?: () => Promise<void>;
  mapError: (err: unknown) => Error;
}

/**
 * Runs a statement in stream mode (arrayRowMode: columns by position) and maps every row to a COPY text line.
 * Nothing is sent to the server before the stream is first read.
 */
export function streamRows(o: StreamRowsOptions): RowStreamHandle {
  let settle!: () => void;
  const finished = new Promise<void>((resolve) => (settle = resolve));
  let started = false;
  let requested = false;
  async function* lines(): AsyncGenerator<string> {
    started = true;
    try {
      if (o.prepare) await o.prepare();
      const request = o.makeRequest();
      request.arrayRowMode = true;
      for (const p of o.params) request.input(p.name, p.type, p.value);
      const rows = request.toReadableStream({ highWaterMark: ROW_HIGH_WATER_MARK });
      // The callback form: in stream mode errors arrive on the stream, and the callback marks the end of the
      // request on the server, after which the transaction's connection is free for the next request.
      request.query(o.text(), () => settle());
      requested = true;
      let chunk = '';
      for await (const row of rows as AsyncIterable<unknown[]>) {
        chunk += o.toLine(row);
        if (chunk.length >= CHUNK_CHARS) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    } catch (err) {
      throw o.mapError(err);
    } finally {
      if (!requested) settle();
    }
  }
  return {
    readable: Readable.from(lines(), { objectMode: false }),
    finished,
    abandon: () => {
      if (!started) settle();
    },
  };
}

export { readLines } from '../core/copy-text';
