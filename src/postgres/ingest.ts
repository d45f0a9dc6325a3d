/**
 * Ingestion of decoded changes into the side tables, run by every snapshot of a source database in which tables
 * are decoded (source.ts). One ingester at a time per database holds the slot lock (session-level) and a stream
 * from the slot; a snapshot that finds the lock taken reads at the horizon the holder records. The holder lets go
 * once it has not been asked to ingest for a while, so a population that opened a snapshot once does not keep the
 * slot from the sync session that needs it every cycle.
 *
 * One ingestion:
 *  1. X0 = pg_snapshot_xmin(pg_current_snapshot()), then L0 = pg_current_wal_insert_lsn(): every xid below X0 had
 *     ended when X0 was read, so its commit record lies before L0. The WAL up to L0 is flushed (a commit with
 *     synchronous_commit = local, when it is not yet): the walsender decodes only flushed WAL.
 *  2. In one transaction: the stream's messages are turned into side rows (decoded-changes.ts) until the walsender
 *     reports it has decoded past L0 (a keepalive answering our request), between two transactions; then
 *     ingested_lsn (how far the rows go) and horizon = X0 are recorded in `decoding`; commit.
 *  3. Only then does the stream's status update let the slot confirm ingested_lsn. Should anything fail before,
 *     the stream is restarted from the recorded ingested_lsn and the same changes come again.
 * The snapshot's version is then least(its xmin, the recorded horizon) (snapshot.ts): below it every change is in
 * the side tables it reads. A budget bounds one ingestion (a backlog after a long pause): what is done is
 * committed with its position, the horizon waits for a later one.
 */
import type { Pool, PoolClient } from 'pg';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import { quotePg } from '../core/identifiers';
import { TRACKING_SCHEMA, prepared } from './catalog';
import { connectClient, isStatementError, PORTABLE_TEXT_SETTINGS, startupOptions } from './connection';
import { ChangeCollector } from './decoded-changes';
import { DECODING_SLOT_LOCK, PUBLICATION, SLOT_NAME_SQL, type TrackingMode } from './decoded-tables';
import { dropSlotIfPresent, publicationReady, resetDecoding, slotBroken, slotState, type SlotRow } from './decoding';
import { formatLsn, parseLsn } from './pgoutput';
import { ReplicationStream } from './replication-stream';
import { registryLayout } from './tracking';

const S = quotePg(TRACKING_SCHEMA);

export interface IngestOptions {
  /** This source tracks in logical mode: a missing REPLICATION privilege is its failure, not a reason to skip. */
  mode: TrackingMode;
  /** One ingestion stops (at a transaction boundary) after this long; the next goes on from there. */
  budgetMs: number;
  /** The slot lock and stream are let go when no ingestion was asked for during this long. */
  idleReleaseMs: number;
}

export type IngestOutcome =
  /** Every transaction that committed before L0 is in the side tables, and the horizon moved to X0. */
  | 'ingested'
  /** Part of the way (the budget ran out): committed with its position, the horizon unchanged. */
  | 'partial'
  /** Another session holds the slot: this snapshot reads at the horizon it records. */
  | 'busy'
  /** No table is decoded in this database. */
  | 'none'
  /** The slot broke: decoded tables are expired (see resetDecoding). */
  | 'reset'
  /** No REPLICATION privilege, in a source that tracks by triggers: not its slot to read. */
  | 'denied';

export interface IngestResult {
  outcome: IngestOutcome;
  /** Side entries written. */
  entries: number;
}

/** How long to wait for the walsender's answer before asking again. */
const REPLY_WAIT_MS = 1_000;
/** A stream quiet for this long has sent what it had: ask where the walsender stands. */
const SILENCE_MS = 50;
/** Side rows written per INSERT. */
const FLUSH_ROWS = 5_000;

/** The ingestion in progress: how far it must go, whether it got there, what failed, who waits for news. */
interface Consuming {
  upto: bigint;
  passed: boolean;
  failure: Error | null;
  wake: (() => void) | null;
}

export class DecodedIngestion {
  /** Holds the slot lock while we stream. */
  private holder: PoolClient | null = null;
  private stream: ReplicationStream | null = null;
  private collector = new ChangeCollector();
  private idleTimer: NodeJS.Timeout | null = null;
  private running: Promise<IngestResult> | null = null;
  /** What the stream last told the slot it may confirm (never less than before: the slot would go back). */
  private confirmed = 0n;
  /** Stream messages not yet handed to the collector, in order (copies). */
  private backlog: ({ kind: 'data'; message: Buffer } | { kind: 'keepalive'; walEnd: bigint })[] = [];
  /** The stream's messages go straight to the collector (during an ingestion, until it must wait for something). */
  private accepting = false;
  private consuming: Consuming | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly url: string,
    private readonly ctx: ErrorContext,
    private readonly opts: IngestOptions,
  ) {}

  /** One ingestion (concurrent callers share the one in progress). */
  ingest(): Promise<IngestResult> {
    this.running ??= this.run().finally(() => {
      this.running = null;
      this.armIdleRelease();
    });
    return this.running;
  }

  private armIdleRelease(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (!this.holder) return;
    this.idleTimer = setTimeout(() => {
      // In turn with ingestions, so none finds its stream closed under it.
      this.running ??= this.release()
        .then((): IngestResult => ({ outcome: 'none', entries: 0 }))
        .finally(() => {
          this.running = null;
        });
    }, this.opts.idleReleaseMs);
    this.idleTimer.unref();
  }

  private async run(): Promise<IngestResult> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    try {
      if (!this.holder) {
        const taken = await this.take();
        if (taken) return taken;
      }
      const holder = this.holder;
      if (!holder) return { outcome: 'none', entries: 0 };
      return await this.ingestHeld(holder);
    } catch (err) {
      const failed = err instanceof Error ? err : new Error(String(err));
      await this.release(!isStatementError(failed));
      if (pgCode(err) === '42501') {
        if (this.opts.mode === 'trigger') return { outcome: 'denied', entries: 0 };
        throw new MirrorError(FailureType.AuthFailed, `reading the replication slot needs a role with the REPLICATION attribute: ${failed.message}`, this.ctx, { cause: err });
      }
      if (pgCode(err) === '55006') {
        throw new MirrorError(FailureType.SourceBusy, `the replication slot is in use by another process: ${failed.message}`, this.ctx, { cause: err });
      }
      throw toMirrorError(err, this.ctx, FailureType.SourceReadFailed);
    }
  }

  /** Takes the slot lock when decoding is set up here and nobody holds it; otherwise says why not. */
  private async take(): Promise<IngestResult | null> {
    const c = await connectClient(this.pool, this.ctx);
    try {
      const named = prepared(c);
      const set = (await registryLayout(named)).decoding && (await named.query(`SELECT 1 FROM ${S}.decoding`)).rows.length > 0;
      if (!set) {
        c.release();
        return { outcome: 'none', entries: 0 };
      }
      const locked = (await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${DECODING_SLOT_LOCK}) AS ok`)).rows[0]?.ok === true;
      if (!locked) {
        c.release();
        return { outcome: 'busy', entries: 0 };
      }
      this.holder = c;
      return null;
    } catch (err) {
      c.release(!isStatementError(err));
      throw err;
    }
  }

  private async ingestHeld(c: PoolClient): Promise<IngestResult> {
    const started = Date.now();
    // Cut since the last ingestion (the server restarted, the network went): a new one starts from our record.
    if (this.stream?.failed) await this.closeStream();
    const point = await horizonPoint(c);
    await c.query('BEGIN');
    try {
      const row = (await c.query<SlotRow>(`SELECT slot_name, ingested_lsn::text, horizon::text FROM ${S}.decoding FOR UPDATE`)).rows[0];
      if (!row) {
        // Untracked meanwhile (dropDecodingIfUnused): the slot is ours to drop now that nothing streams from it.
        await c.query('COMMIT');
        await this.closeStream();
        await dropSlotIfPresent(c, await slotNameNow(c));
        await this.release();
        return { outcome: 'none', entries: 0 };
      }
      if (this.stream === null) {
        // Before starting a stream, the slot must not be gone, lost or confirmed past our record (see decoding.ts).
        const slot = await slotState(c, row.slot_name);
        if (slotBroken(row, slot) !== null || !(await publicationReady(c))) {
          await resetDecoding(c);
          await c.query('COMMIT');
          if (slot?.ours && slot.lost) await dropSlotIfPresent(c, row.slot_name);
          await this.release();
          return { outcome: 'reset', entries: 0 };
        }
      }
      const stream = this.stream ?? (await this.openStream(row));
      const next = BigInt((await c.query<{ next: string }>(`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next`)).rows[0]?.next ?? '0');
      await this.collector.begin(c, next, parseLsn(row.ingested_lsn));
      const reached = await this.consume(stream, parseLsn(point.l0), started + this.opts.budgetMs);
      await this.collector.finish();
      const end = this.collector.lastEnd;
      const upto = parseLsn(point.l0);
      const position = reached ? (end !== null && end > upto ? end : upto) : (end ?? parseLsn(row.ingested_lsn));
      await c.query(
        `UPDATE ${S}.decoding SET ingested_lsn = greatest(ingested_lsn, $1::pg_lsn), ingested_at = now()${reached ? ', horizon = greatest(horizon, $2::xid8)' : ''}`,
        reached ? [formatLsn(position), point.x0] : [formatLsn(position)],
      );
      await c.query('COMMIT');
      if (position > this.confirmed) this.confirmed = position;
      stream.sendStatus(this.confirmed, false);
      return { outcome: reached ? 'ingested' : 'partial', entries: this.collector.entries };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      this.collector.abandon();
      // What the stream delivered is not in the side tables: it must be sent again, from the recorded position.
      await this.closeStream();
      throw err;
    }
  }

  private async openStream(row: SlotRow): Promise<ReplicationStream> {
    this.collector = new ChangeCollector();
    this.backlog = [];
    this.accepting = false;
    this.confirmed = parseLsn(row.ingested_lsn);
    const stream: ReplicationStream = await ReplicationStream.start({
      url: this.url,
      options: startupOptions(PORTABLE_TEXT_SETTINGS),
      slot: row.slot_name,
      publication: PUBLICATION,
      from: row.ingested_lsn,
      sink: {
        data: (message) => this.onData(message),
        keepalive: (walEnd, replyRequested) => {
          // Without a reply for wal_sender_timeout the walsender gives up on us.
          if (replyRequested) this.stream?.sendStatus(this.confirmed, false);
          if (this.accepting) this.onKeepalive(walEnd);
          else this.backlog.push({ kind: 'keepalive', walEnd });
          this.wake();
        },
        failed: (err) => {
          if (this.consuming) this.consuming.failure ??= err;
          this.wake();
        },
      },
    });
    stream.pause();
    this.stream = stream;
    return stream;
  }

  /** A message, as it arrives: to the collector while it accepts, else (a copy) to the backlog. */
  private onData(message: Buffer): void {
    if (!this.accepting || !this.consuming) {
      this.backlog.push({ kind: 'data', message: Buffer.from(message) });
      this.stream?.pause();
      return;
    }
    let need: number | null;
    try {
      need = this.collector.handle(message);
    } catch (err) {
      this.consuming.failure ??= err instanceof Error ? err : new Error(String(err));
      this.stopAccepting();
      return;
    }
    if (need !== null) {
      this.backlog.push({ kind: 'data', message: Buffer.from(message) });
      this.stopAccepting();
      return;
    }
    if (this.afterMessage()) this.stopAccepting();
  }

  private onKeepalive(walEnd: bigint): void {
    if (this.consuming && walEnd >= this.consuming.upto) this.consuming.passed = true;
  }

  /** After a message was handled: true when the collector should stop taking more (past L0, or rows to write). */
  private afterMessage(): boolean {
    const c = this.consuming;
    if (!c) return true;
    // A transaction committed at or after L0 is past it: the ones before it have all been sent.
    if (this.collector.betweenTransactions && this.collector.lastEnd !== null && this.collector.lastEnd > c.upto) c.passed = true;
    return (c.passed && this.collector.betweenTransactions) || this.collector.pendingRows >= FLUSH_ROWS;
  }

  private stopAccepting(): void {
    this.accepting = false;
    this.stream?.pause();
    this.wake();
  }

  private wake(): void {
    const c = this.consuming;
    const w = c?.wake;
    if (c && w) {
      c.wake = null;
      w();
    }
  }

  /**
   * Feeds the stream's messages to the collector until the walsender has decoded past `upto` (true), or the
   * deadline passed (false) — either way between two transactions. While changes flow, a commit past L0 says the
   * ones before it have all come; a keepalive answering our request says so when nothing was committed since
   * (asked when the stream falls silent, or every second).
   */
  private async consume(stream: ReplicationStream, upto: bigint, deadline: number): Promise<boolean> {
    const c: Consuming = { upto, passed: false, failure: null, wake: null };
    this.consuming = c;
    let asked = 0;
    try {
      for (;;) {
        if (c.failure) throw c.failure;
        if (stream.failed) throw stream.failed;
        // What arrived while nobody took it, in order.
        while (this.backlog.length > 0 && !(c.passed && this.collector.betweenTransactions)) {
          const e = this.backlog[0]!;
          if (e.kind === 'keepalive') {
            this.backlog.shift();
            this.onKeepalive(e.walEnd);
            continue;
          }
          const need = this.collector.handle(e.message);
          if (need !== null) {
            await this.collector.resolve(need);
            continue;
          }
          this.backlog.shift();
          this.afterMessage();
          if (this.collector.pendingRows >= FLUSH_ROWS) await this.collector.flush();
        }
        if (this.collector.pendingRows >= FLUSH_ROWS) await this.collector.flush();
        if (this.collector.betweenTransactions) {
          if (c.passed) return true;
          if (Date.now() >= deadline) return false;
        }
        if (this.backlog.length > 0) continue;
        if (Date.now() - asked >= REPLY_WAIT_MS) {
          stream.sendStatus(this.confirmed, true);
          asked = Date.now();
        }
        const woken = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            c.wake = null;
            resolve(false);
          }, SILENCE_MS);
          c.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
          this.accepting = true;
          stream.resume();
        });
        this.accepting = false;
        // Quiet for a while: the walsender has sent what it had; ask where it stands.
        if (!woken && Date.now() - asked >= SILENCE_MS) asked = 0;
      }
    } finally {
      this.accepting = false;
      stream.pause();
      this.consuming = null;
    }
  }

  private async closeStream(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    this.backlog = [];
    this.accepting = false;
    await s?.close();
  }

  /** Lets go of the stream and the slot lock (`broken`: the holder connection is discarded). */
  async release(broken = false): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.closeStream();
    const c = this.holder;
    this.holder = null;
    if (!c) return;
    if (!broken) {
      try {
        await c.query(`SELECT pg_advisory_unlock(${DECODING_SLOT_LOCK})`);
      } catch {
        broken = true;
      }
    }
    c.release(broken);
  }

  async close(): Promise<void> {
    await this.running?.catch(() => undefined);
    await this.release();
  }
}

/** X0 and L0 (see the file comment), with the WAL flushed up to L0. */
async function horizonPoint(c: PoolClient): Promise<{ x0: string; l0: string }> {
  const point = (
    await c.query<{ x0: string; l0: string; flushed: boolean }>(
      `SELECT x0::text, l0::text, pg_catalog.pg_current_wal_flush_lsn() >= l0 AS flushed
         FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x0, pg_catalog.pg_current_wal_insert_lsn() AS l0 OFFSET 0) h`,
    )
  ).rows[0];
  if (!point) throw new Error('no horizon');
  if (!point.flushed) {
    // A transaction with an xid flushes the WAL up to its commit record, which lies after L0.
    await c.query('BEGIN');
    try {
      await c.query(`SET LOCAL synchronous_commit = local`);
      await c.query(`SELECT pg_current_xact_id()`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }
  return point;
}

async function slotNameNow(c: PoolClient): Promise<string> {
  return (await c.query<{ name: string }>(`SELECT ${SLOT_NAME_SQL} AS name`)).rows[0]?.name ?? '';
}

function pgCode(err: unknown): string {
  const e = err instanceof MirrorError ? err.cause : err;
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
}
