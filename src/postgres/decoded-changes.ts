/**
 * Decoded changes into side-table rows: what a row trigger would have recorded, from pgoutput messages. Per change
 * of a decoded table (or of one of its partitions): an INSERT records the new key ('I'); an UPDATE the new key
 * ('U'), or when the key changed the old one ('D') and the new one ('I'); a DELETE the old key ('D'); each stamped
 * with the transaction's full xid and its commit time. A TRUNCATE is appended to `truncated`, which raises the
 * table's min valid version. Key columns are found by name, as the trigger reads them: a column renamed since the
 * install is missing, its entry has a NULL key, and the reader takes that for expired tracking.
 *
 * Key values stay the bytes the walsender sent (in the stream's client encoding, UTF-8); the INSERT has the server
 * convert them into the database's encoding.
 */
import type { PoolClient } from 'pg';
import { quotePg } from '../core/identifiers';
import { TRACKING_SCHEMA } from './catalog';
import { fullXid, parsePgOutput, UNCHANGED_TOAST, type Tuple, type TupleValue } from './pgoutput';
import { qualifiedSide } from './tracking';

const S = quotePg(TRACKING_SCHEMA);
const BEGIN = 0x42;
const COMMIT = 0x43;
/** pgoutput's timestamps count microseconds from here. */
const PG_EPOCH = `'2000-01-01 00:00:00+00'::timestamptz`;

interface DecodedTable {
  relid: string;
  side: string;
  keyNames: Buffer[];
  sideExists: boolean;
}

interface DecodedTables {
  byRelid: Map<string, DecodedTable>;
  byPartition: Map<string, DecodedTable>;
}

/** Where a relation of the stream records: a decoded table, and the positions of its key columns in the relation's tuples. */
interface RelationTarget {
  table: DecodedTable;
  keyIndexes: number[];
}

type Key = (Buffer | null)[];

/** Side rows waiting for their INSERT: key bytes per key column, op, xid, commit time (microseconds since 2000-01-01 UTC). */
class SideRows {
  readonly keys: Key[];
  readonly ops: string[] = [];
  readonly xids: string[] = [];
  readonly ats: string[] = [];

  constructor(readonly table: DecodedTable) {
    this.keys = table.keyNames.map(() => []);
  }

  add(key: Key, op: 'I' | 'U' | 'D', xid: string, at: string): void {
    key.forEach((v, i) => this.keys[i]!.push(v));
    this.ops.push(op);
    this.xids.push(xid);
    this.ats.push(at);
  }

  get size(): number {
    return this.ops.length;
  }
}

/**
 * Collects one stream's decoded changes into side rows, written on the ingesting transaction's connection. Lives
 * as long as the stream (pgoutput describes each relation once per stream); each ingestion starts with begin().
 * handle() is synchronous (a message is a view into the driver's buffer, valid during the call only); what needs
 * the database — the side table of a relation not seen yet, an INSERT of pending rows — the caller awaits between
 * messages: resolve() and flush().
 */
export class ChangeCollector {
  /** Each relation's column names, as pgoutput last described it in this stream. */
  private readonly columns = new Map<number, Buffer[]>();
  private db: PoolClient | null = null;
  private tables: DecodedTables = { byRelid: new Map(), byPartition: new Map() };
  private targets = new Map<number, RelationTarget | null>();
  private pending = new Map<string, SideRows>();
  private pendingCount = 0;
  private truncated = new Map<string, { xid: string; at: string }>();
  private txn: { xid: string; at: string; skip: boolean } | null = null;
  private next = 0n;
  /** Transactions that committed before this are in the side tables already (an earlier ingestion's record). */
  private skipBefore = 0n;
  /** The end of the last transaction seen (its commit record's end). */
  lastEnd: bigint | null = null;
  /** Side entries written in this ingestion. */
  entries = 0;

  /**
   * Starts an ingestion on `db` (inside its transaction). `next`: the next full xid now, the reference for the
   * 32 → 64-bit xid of the transactions decoded.
   */
  async begin(db: PoolClient, next: bigint, skipBefore: bigint): Promise<void> {
    this.db = db;
    this.next = next;
    this.skipBefore = skipBefore;
    this.tables = await loadDecodedTables(db);
    this.targets = new Map();
    this.entries = 0;
  }

  /** Between two transactions of the stream (a safe place to stop). */
  get betweenTransactions(): boolean {
    return this.txn === null;
  }

  /** Side rows not yet written. */
  get pendingRows(): number {
    return this.pendingCount;
  }

  /**
   * Takes one message. Returns null when done with it, or the oid of a relation to resolve() first (the message
   * was not taken: hand it in again after).
   */
  handle(raw: Buffer): number | null {
    // Begin and Commit come with every transaction: read in place (the layout parsePgOutput documents).
    if (raw[0] === BEGIN && raw.length === 21) {
      const finalLsn = raw.readBigUInt64BE(1);
      this.txn = { xid: fullXid(raw.readUInt32BE(17), this.next).toString(), at: raw.readBigInt64BE(9).toString(), skip: finalLsn < this.skipBefore };
      return null;
    }
    if (raw[0] === COMMIT && raw.length === 26) {
      this.lastEnd = raw.readBigUInt64BE(10);
      this.txn = null;
      return null;
    }
    const m = parsePgOutput(raw);
    switch (m.tag) {
      case 'begin':
      case 'commit':
        throw new Error(`pgoutput ${m.tag} message of unexpected length ${raw.length}`);
      case 'relation':
        // Copies: the names outlive the message.
        this.columns.set(m.relid, m.columns.map((c) => Buffer.from(c.name)));
        this.targets.delete(m.relid);
        return null;
      case 'other':
        return null;
      default:
        break;
    }
    if (!this.txn || this.txn.skip) return null;
    const { xid, at } = this.txn;
    if (m.tag === 'truncate') {
      const unresolved = m.relids.find((r) => !this.targets.has(r));
      if (unresolved !== undefined) return unresolved;
      for (const relid of m.relids) {
        const target = this.targets.get(relid);
        if (target) this.truncated.set(target.table.relid, { xid, at });
      }
      return null;
    }
    const target = this.targets.get(m.relid);
    if (target === undefined) return m.relid;
    if (target === null || !target.table.sideExists) return null;
    if (m.tag === 'insert') {
      this.record(target, keyOf(target, m.newTuple), 'I', xid, at);
    } else if (m.tag === 'delete') {
      this.record(target, keyOf(target, m.old.tuple), 'D', xid, at);
    } else {
      const old = m.old ? keyOf(target, m.old.tuple) : null;
      const now = keyOf(target, m.newTuple, m.old?.tuple);
      if (old && !sameKey(old, now)) {
        this.record(target, old, 'D', xid, at);
        this.record(target, now, 'I', xid, at);
      } else {
        this.record(target, now, 'U', xid, at);
      }
    }
    return null;
  }

  /** Finds where a relation of the stream records (see handle). */
  async resolve(relid: number): Promise<void> {
    let table = this.lookup(String(relid));
    if (!table) {
      // Installed after this ingestion began (its changes follow its install's commit): read the registry again.
      this.tables = await loadDecodedTables(this.connection());
      table = this.lookup(String(relid)) ?? (await this.ancestorOf(relid));
    }
    const columns = this.columns.get(relid) ?? [];
    this.targets.set(relid, table ? { table, keyIndexes: table.keyNames.map((name) => columns.findIndex((c) => c.equals(name))) } : null);
  }

  /** Writes the pending side rows (in the ingestion's transaction). */
  async flush(): Promise<void> {
    const batches = [...this.pending.values()];
    this.pending.clear();
    this.pendingCount = 0;
    for (const rows of batches) {
      this.entries += rows.size;
      await insertSideRows(this.connection(), rows);
    }
  }

  /** Writes what is pending, and the TRUNCATEs (the caller commits it all with the position it reached). */
  async finish(): Promise<void> {
    await this.flush();
    for (const [relid, t] of this.truncated) {
      await this.connection().query(`INSERT INTO ${S}.truncated (relid, xid, at) VALUES ($1::int8::oid, $2::xid8, ${PG_EPOCH} + $3::int8 * interval '1 microsecond')`, [
        relid,
        t.xid,
        t.at,
      ]);
    }
    this.truncated.clear();
  }

  /** Forgets an ingestion that failed (its transaction rolled back; the stream is restarted). */
  abandon(): void {
    this.pending.clear();
    this.pendingCount = 0;
    this.truncated.clear();
    this.txn = null;
    this.db = null;
  }

  private connection(): PoolClient {
    if (!this.db) throw new Error('no ingestion in progress');
    return this.db;
  }

  private lookup(relid: string): DecodedTable | undefined {
    return this.tables.byRelid.get(relid) ?? this.tables.byPartition.get(relid);
  }

  /** A partition attached after the install (its table reads as not intact anyway): its decoded ancestor now. */
  private async ancestorOf(relid: number): Promise<DecodedTable | undefined> {
    const { rows } = await this.connection().query<{ relid: string }>(
      `SELECT a::oid::int8::text AS relid FROM pg_catalog.pg_partition_ancestors($1::int8::oid) a`,
      [String(relid)],
    );
    return rows.map((r) => this.tables.byRelid.get(r.relid)).find((t) => t !== undefined);
  }

  private record(target: RelationTarget, key: Key, op: 'I' | 'U' | 'D', xid: string, at: string): void {
    let rows = this.pending.get(target.table.relid);
    if (!rows) this.pending.set(target.table.relid, (rows = new SideRows(target.table)));
    rows.add(key, op, xid, at);
    this.pendingCount++;
  }
}

/** The decoded tables: side table, key column names in UTF-8 (as pgoutput sends them to our stream). */
async function loadDecodedTables(db: PoolClient): Promise<DecodedTables> {
  const { rows } = await db.query<{ relid: string; side: string; partitions: string[]; key_names: Buffer[]; side_exists: boolean }>(
    `SELECT tr.relid::int8::text AS relid, tr.side_table AS side, tr.partitions::int8[]::text[] AS partitions,
            ARRAY(SELECT pg_catalog.convert_to(k.name, 'UTF8')
                    FROM unnest(tr.key_columns) WITH ORDINALITY AS k(name, ord) ORDER BY k.ord) AS key_names,
            pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident(tr.side_table)) IS NOT NULL AS side_exists
       FROM ${S}.tracked tr JOIN ${S}.decoded d ON d.relid = tr.relid`,
    [TRACKING_SCHEMA],
  );
  const tables: DecodedTables = { byRelid: new Map(), byPartition: new Map() };
  for (const r of rows) {
    const table = { relid: r.relid, side: r.side, keyNames: r.key_names, sideExists: r.side_exists };
    tables.byRelid.set(r.relid, table);
    for (const p of r.partitions) tables.byPartition.set(p, table);
  }
  return tables;
}

/**
 * The key of a tuple, copied out of the message; an unchanged TOASTed key column (an UPDATE) comes from the old
 * row when there is one.
 */
export function keyOf(target: { keyIndexes: number[] }, tuple: Tuple, fallback?: Tuple): Key {
  return target.keyIndexes.map((i) => {
    if (i < 0) return null;
    let v: TupleValue = tuple.value(i);
    if (v === UNCHANGED_TOAST) v = fallback ? fallback.value(i) : null;
    return v instanceof Buffer ? Buffer.from(v) : null;
  });
}

export function sameKey(a: Key, b: Key): boolean {
  return a.length === b.length && a.every((v, i) => (v === null ? b[i] === null : b[i] != null && v.equals(b[i]!)));
}

/** One INSERT for a batch of side rows. */
async function insertSideRows(db: PoolClient, rows: SideRows): Promise<void> {
  const n = rows.keys.length;
  const cols = rows.keys.map((_, i) => `c${i + 1}`);
  const key = `ARRAY[${cols.map((col) => `pg_catalog.convert_from(u.${col}, 'UTF8')`).join(', ')}]::text[]`;
  const unnest = [...cols.map((_, i) => `$${i + 1}::bytea[]`), `$${n + 1}::"char"[]`, `$${n + 2}::xid8[]`, `$${n + 3}::int8[]`].join(', ');
  await db.query(
    `INSERT INTO ${qualifiedSide(rows.table.side)} (k, op, xid, recorded_at)
     SELECT ${key}, u.op, u.xid, ${PG_EPOCH} + u.at * interval '1 microsecond' FROM unnest(${unnest}) AS u(${[...cols, 'op', 'xid', 'at'].join(', ')})`,
    [...rows.keys, rows.ops, rows.xids, rows.ats],
  );
}
