/**
 * A logical replication stream (START_REPLICATION … LOGICAL on a `replication=database` connection) read through
 * node-pg: the walsender keeps one decoding context for the stream's whole life, so every WAL record is decoded
 * once — unlike the SQL functions (pg_logical_slot_peek_changes), which decode again from the slot's restart
 * point on every call, up to minutes of WAL on a busy server.
 *
 * node-pg has no CopyBoth API, but it hands every CopyData message to the active query: this object is that query,
 * and passes each message on to a sink at once. Flow control is TCP's: the reader pauses the socket, and the
 * walsender waits.
 * Messages of the protocol (https://www.postgresql.org/docs/current/protocol-replication.html): from the server,
 * XLogData ('w': start, end, send time, then one pgoutput message) and Primary keepalive ('k': the WAL position
 * the walsender has decoded up to, its time, reply requested); to the server, Standby status update ('r': written,
 * flushed and applied positions, time, reply requested) — the flushed position is what the slot confirms.
 */
import { Client, type ClientConfig, type Connection } from 'pg';

/**
 * Where the stream's messages go, synchronously, as node-pg parses them: `message` is a view into the driver's
 * buffer, valid during the call only (copy what must outlive it).
 */
export interface StreamSink {
  data(message: Buffer): void;
  /** The walsender has processed the WAL up to `walEnd`: everything committed before it has been sent. */
  keepalive(walEnd: bigint, replyRequested: boolean): void;
  failed(err: Error): void;
}

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
const PG_EPOCH_MICROS = 946_684_800_000_000n;

interface CopyBothConnection extends Connection {
  sendCopyFromChunk(chunk: Buffer): void;
}

function canSendCopyData(connection: Connection): connection is CopyBothConnection {
  return typeof (connection as Partial<CopyBothConnection>).sendCopyFromChunk === 'function';
}

export class ReplicationStream {
  private failure: Error | null = null;
  private connection: CopyBothConnection | null = null;

  private constructor(
    private readonly client: Client,
    private readonly sink: StreamSink,
  ) {}

  /**
   * Connects and starts streaming `slot` from `from` (the server starts at the slot's confirmed position if that
   * is later). `options` are session settings: the walsender's output functions print the values we record.
   */
  static async start(args: { url: string; options: string; slot: string; publication: string; from: string; sink: StreamSink }): Promise<ReplicationStream> {
    if (!/^[a-z0-9_]{1,63}$/.test(args.slot)) throw new Error(`unexpected replication slot name ${JSON.stringify(args.slot)}`);
    if (!/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(args.from)) throw new Error(`not an LSN: ${JSON.stringify(args.from)}`);
    const config: ClientConfig & { replication: string } = {
      connectionString: args.url,
      replication: 'database',
      options: args.options,
      // pgoutput converts names and values to the client encoding: UTF-8, whatever the database's.
      client_encoding: 'UTF8',
      connectionTimeoutMillis: 15_000,
      keepAlive: true,
    };
    const client = new Client(config);
    const stream = new ReplicationStream(client, args.sink);
    client.on('error', (err: Error) => stream.fail(err));
    await client.connect();
    // The publication list is a string of identifiers: quoted as an identifier, then as a literal.
    const ident = `"${args.publication.replace(/"/g, '""')}"`;
    const publications = `'${ident.replace(/'/g, "''")}'`;
    client.query(stream.submittable(`START_REPLICATION SLOT ${args.slot} LOGICAL ${args.from} (proto_version '1', publication_names ${publications})`));
    return stream;
  }

  /** The query node-pg runs: it sends START_REPLICATION and then receives every CopyData of the stream. */
  private submittable(text: string): {
    submit(connection: Connection): void;
    handleCopyData(msg: { chunk: Buffer }): void;
    handleError(err: Error): void;
    handleReadyForQuery(): void;
    handleCommandComplete(): void;
    handleRowDescription(): void;
    handleDataRow(): void;
    handleEmptyQuery(): void;
    handleCopyInResponse(): void;
    handlePortalSuspended(): void;
  } {
    const noop = (): void => undefined;
    return {
      submit: (connection) => {
        if (!canSendCopyData(connection)) throw new Error('this version of pg cannot send CopyData');
        this.connection = connection;
        connection.query(text);
      },
      handleCopyData: (msg) => this.receive(msg.chunk),
      handleError: (err) => this.fail(err),
      // The server ended the stream (or refused it: then handleError came first).
      handleReadyForQuery: () => this.fail(new Error('the replication stream ended')),
      handleCommandComplete: noop,
      handleRowDescription: noop,
      handleDataRow: noop,
      handleEmptyQuery: noop,
      handleCopyInResponse: noop,
      handlePortalSuspended: noop,
    };
  }

  private receive(chunk: Buffer): void {
    if (this.failure) return;
    try {
      const kind = chunk.readUInt8(0);
      // XLogData: 'w', start, end, send time, then the plugin's message.
      if (kind === 0x77) this.sink.data(chunk.subarray(25));
      // Primary keepalive: 'k', the walsender's position, its time, reply requested.
      else if (kind === 0x6b) this.sink.keepalive(chunk.readBigUInt64BE(1), chunk.readUInt8(17) === 1);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.sink.failed(err);
  }

  get failed(): Error | null {
    return this.failure;
  }

  /** Stops reading (TCP's flow control then holds the walsender back); messages already read still arrive. */
  pause(): void {
    this.connection?.stream.pause();
  }

  resume(): void {
    this.connection?.stream.resume();
  }

  /**
   * A Standby status update: `flushed` is what the slot may confirm (everything before it is safely ingested).
   * With `replyRequested`, the walsender answers at once with a keepalive carrying how far it has decoded.
   */
  sendStatus(flushed: bigint, replyRequested: boolean): void {
    if (!this.connection || this.failure) return;
    const buf = Buffer.alloc(34);
    buf.writeUInt8(0x72 /* r */, 0);
    buf.writeBigUInt64BE(flushed, 1);
    buf.writeBigUInt64BE(flushed, 9);
    buf.writeBigUInt64BE(flushed, 17);
    buf.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_MICROS, 25);
    buf.writeUInt8(replyRequested ? 1 : 0, 33);
    this.connection.sendCopyFromChunk(buf);
  }

  /** Ends the connection (the walsender stops; the slot keeps what was confirmed). */
  async close(): Promise<void> {
    this.fail(new Error('the replication stream was closed'));
    await this.client.end().catch(() => undefined);
  }
}
