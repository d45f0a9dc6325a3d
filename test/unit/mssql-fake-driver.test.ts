/**
 * The SQL Server adapters against a recording fake of the `mssql` driver: ConnectionPool, Transaction and
 * Request are replaced on the driver module itself (so src/mssql uses them unchanged), every request records when
 * it begins and ends on which connection, and two requests at once on one connection (a transaction holds one) are
 * a violation — the real driver refuses them at run time (EREQINPROG), as it refuses a commit or rollback while a
 * request is in progress. Answers come from a script per test, with delays so that requests really interleave.
 *
 * Also here, because they need the driver: issue 13's permission check (5), set-up without ALTER DATABASE (7), the
 * table fingerprint read in the snapshot's transaction (8), the columnstore skip (10), the fingerprint that degrades
 * (6) and a key that cannot fit failing before anything is written (1).
 */
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import sql from 'mssql';
import { FailureType, MirrorError } from '../../src/core/errors';
import { encodeLine } from '../../src/core/copy-text';
import type { TableSchema } from '../../src/core/types';
import { MssqlChangeSource } from '../../src/mssql/source';
import { MssqlMirror } from '../../src/mssql/mirror';
import * as mirrorSqlText from '../../src/mssql/mirror-sql';
import { enableTracking } from '../../src/mssql/tracking';

// ---------------------------------------------------------------------------------------------------------------
// The fake driver

type Row = Record<string, unknown>;

/** What the server answers to one statement. */
interface Answer {
  rows?: Row[] | unknown[][];
  rowsAffected?: number;
  /** Fails the request (with `.number`, like a RequestError) after the delay. */
  error?: { message: string; number?: number };
  delayMs?: number;
}

type Script = (text: string, params: Record<string, unknown>, kind: 'query' | 'batch' | 'bulk') => Answer;

interface Sent {
  connection: number;
  kind: 'query' | 'batch' | 'bulk';
  text: string;
  params: Record<string, unknown>;
  /** For bulk: the rows loaded. */
  rows?: unknown[][];
}

class DriverError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly number?: number,
  ) {
    super(message);
  }
}

class Recorder {
  script: Script = () => ({ rows: [] });
  readonly sent: Sent[] = [];
  readonly violations: string[] = [];
  readonly timeline: string[] = [];
  private readonly busy = new Map<number, string>();
  private nextConnection = 1;
  private readonly free: number[] = [];

  reset(script: Script): void {
    this.script = script;
    this.sent.length = 0;
    this.violations.length = 0;
    this.timeline.length = 0;
    this.busy.clear();
  }

  takeConnection(): number {
    return this.free.pop() ?? this.nextConnection++;
  }

  giveBack(connection: number): void {
    this.free.push(connection);
  }

  begin(connection: number, what: string): void {
    const running = this.busy.get(connection);
    if (running !== undefined) this.violations.push(`connection ${connection}: "${short(what)}" began while "${short(running)}" was running`);
    this.busy.set(connection, what);
    this.timeline.push(`${connection} begin ${short(what)}`);
  }

  end(connection: number, what: string): void {
    if (this.busy.get(connection) === what) this.busy.delete(connection);
    this.timeline.push(`${connection} end ${short(what)}`);
  }

  isBusy(connection: number): string | undefined {
    return this.busy.get(connection);
  }
}

const short = (text: string): string => text.replace(/\s+/g, ' ').slice(0, 70);
const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const recorder = new Recorder();

class FakePool {
  connected = false;
  readonly config: unknown;

  constructor(config: unknown) {
    this.config = config;
  }

  async connect(): Promise<this> {
    await tick();
    this.connected = true;
    return this;
  }

  on(): this {
    return this;
  }

  async close(): Promise<void> {
    this.connected = false;
  }

  request(): FakeRequest {
    return new FakeRequest(this);
  }
}

class FakeTransaction {
  connection: number | null = null;
  active: FakeRequest | null = null;

  constructor(readonly parent: FakePool) {}

  async begin(): Promise<this> {
    await tick();
    this.connection = recorder.takeConnection();
    recorder.timeline.push(`${this.connection} BEGIN TRANSACTION`);
    return this;
  }

  /** As the real driver: one request at a time, or EREQINPROG. */
  acquire(request: FakeRequest, what: string): number {
    if (this.connection === null) throw new DriverError('Transaction has not begun. Call begin() first.', 'ENOTBEGUN');
    if (this.active) {
      recorder.violations.push(`transaction on connection ${this.connection}: "${short(what)}" requested while another request was in progress`);
      throw new DriverError("Can't acquire connection for the request. There is another request in progress.", 'EREQINPROG');
    }
    this.active = request;
    return this.connection;
  }

  release(request: FakeRequest): void {
    if (this.active === request) this.active = null;
  }

  async commit(): Promise<void> {
    await this.finish('COMMIT');
  }

  async rollback(): Promise<void> {
    await this.finish('ROLLBACK');
  }

  private async finish(what: string): Promise<void> {
    await tick();
    if (this.connection === null) throw new DriverError('Transaction has not begun. Call begin() first.', 'ENOTBEGUN');
    if (this.active || recorder.isBusy(this.connection)) {
      recorder.violations.push(`transaction on connection ${this.connection}: ${what} while a request was in progress`);
      throw new DriverError(`Can't ${what.toLowerCase()} transaction. There is a request in progress.`, 'EREQINPROG');
    }
    recorder.timeline.push(`${this.connection} ${what}`);
    recorder.giveBack(this.connection);
    this.connection = null;
  }
}

interface BulkTable {
  name: string;
  rows: unknown[][];
}

class FakeRequest {
  arrayRowMode = false;
  private readonly params: Record<string, unknown> = {};
  private stream: Readable | null = null;

  constructor(readonly parent: FakePool | FakeTransaction) {}

  input(name: string, _type: unknown, value: unknown): this {
    this.params[name] = value;
    return this;
  }

  toReadableStream(): Readable {
    this.stream = new Readable({ objectMode: true, read: () => undefined });
    return this.stream;
  }

  query(text: string, callback?: () => void): Promise<unknown> {
    return this.run('query', text, callback);
  }

  batch(text: string, callback?: () => void): Promise<unknown> {
    return this.run('batch', text, callback);
  }

  bulk(table: BulkTable): Promise<unknown> {
    return this.run('bulk', `insert bulk ${table.name}`, undefined, table.rows.map((r) => [...r]));
  }

  private run(kind: Sent['kind'], text: string, callback?: () => void, bulkRows?: unknown[][]): Promise<unknown> {
    const work = this.execute(kind, text, bulkRows);
    if (callback) {
      // Stream mode: rows and errors go to the stream, the callback says the request has ended.
      void work.then(
        () => callback(),
        (err: unknown) => {
          this.stream?.destroy(err as Error);
          callback();
        },
      );
      return Promise.resolve(undefined);
    }
    return work;
  }

  private async execute(kind: Sent['kind'], text: string, bulkRows?: unknown[][]): Promise<unknown> {
    const tx = this.parent instanceof FakeTransaction ? this.parent : null;
    await tick();
    const connection = tx ? tx.acquire(this, text) : recorder.takeConnection();
    recorder.begin(connection, text);
    recorder.sent.push({ connection, kind, text, params: { ...this.params }, ...(bulkRows ? { rows: bulkRows } : {}) });
    try {
      const answer = recorder.script(text, this.params, kind);
      await tick(answer.delayMs ?? 1);
      if (answer.error) throw Object.assign(new DriverError(answer.error.message, 'EREQUEST', answer.error.number));
      const rows = answer.rows ?? [];
      if (this.stream) {
        for (const row of rows) {
          this.stream.push(this.arrayRowMode && !Array.isArray(row) ? Object.values(row) : row);
          await tick();
        }
        this.stream.push(null);
      }
      return { recordset: rows, recordsets: [rows], rowsAffected: [answer.rowsAffected ?? rows.length], output: {} };
    } finally {
      // As the driver: the connection is released before the caller hears of the end.
      recorder.end(connection, text);
      if (tx) tx.release(this);
      else recorder.giveBack(connection);
    }
  }
}

const originals = { ConnectionPool: sql.ConnectionPool, Transaction: sql.Transaction, Request: sql.Request };

beforeAll(() => {
  Object.assign(sql, { ConnectionPool: FakePool, Transaction: FakeTransaction, Request: FakeRequest });
});

afterAll(() => {
  Object.assign(sql, originals);
});

// ---------------------------------------------------------------------------------------------------------------
// Scripts

const URL = 'mssql://reader:secret@fake-host:1433/crm';

const orders: TableSchema = {
  name: 'orders',
  source: { schema: 'dbo', table: 'orders' },
  columns: [
    { name: 'at', type: { kind: 'timestamp', precision: 3 }, nullable: false },
    { name: 'id', type: { kind: 'int32' }, nullable: false },
    { name: 'note', type: { kind: 'string' }, nullable: true },
  ],
  primaryKey: ['at', 'id'],
};

const items: TableSchema = {
  name: 'items',
  source: { schema: 'public', table: 'items' },
  columns: [
    { name: 'code', type: { kind: 'string' }, nullable: false },
    { name: 'qty', type: { kind: 'int32' }, nullable: true },
  ],
  primaryKey: ['code'],
};

const FINGERPRINT_ROW = { database_name: 'crm', create_date: '2024-01-01T00:00:00.000', database_guid: 'AA', recovery_fork_guid: 'BB' };

interface SourceFacts {
  minValid?: string | null;
  canView?: number | null;
  fingerprint?: Row;
  tracking?: Row | null;
}

/** A source server: catalog, versions, rows and changes of `orders` (n rows each, so streams take a while). */
function sourceScript(facts: SourceFacts = {}, n = 40): Script {
  return (text) => {
    if (text.includes('CHANGE_TRACKING_CURRENT_VERSION()')) return { rows: [{ version: '100' }] };
    if (text.includes('sys.database_recovery_status')) return { rows: [facts.fingerprint ?? FINGERPRINT_ROW] };
    if (text.includes('CHANGE_TRACKING_MIN_VALID_VERSION')) {
      return { rows: [{ min_valid_version: facts.minValid === undefined ? '10' : facts.minValid, can_view_tracking: facts.canView ?? 1, user_name: 'reader' }] };
    }
    if (text.includes('sys.change_tracking_tables AS ctt')) {
      return { rows: facts.tracking === null ? [] : [facts.tracking ?? { begin_version: '7', side_table: '1001@2024-01-01T00:00:00' }] };
    }
    if (text.includes('FROM sys.columns AS c')) {
      return {
        rows: [
          { column_name: 'at', type_name: 'datetime', max_length: 8, precision: 23, scale: 3, is_nullable: false, key_ordinal: 1 },
          { column_name: 'id', type_name: 'int', max_length: 4, precision: 10, scale: 0, is_nullable: false, key_ordinal: 2 },
          { column_name: 'note', type_name: 'nvarchar', max_length: -1, precision: 0, scale: 0, is_nullable: true, key_ordinal: null },
        ],
        delayMs: 5,
      };
    }
    if (text.includes('CHANGETABLE(CHANGES')) {
      return { rows: Array.from({ length: n }, (_, i) => ['U', '2024-01-01 00:00:00.997', String(i), `n${i}`, '2024-01-01 00:00:00.997', String(i)]) };
    }
    if (text.startsWith('SELECT ') && text.includes('FROM [dbo].[orders] AS t')) {
      return { rows: Array.from({ length: n }, (_, i) => ['2024-01-01 00:00:00.997', String(i), `n${i}`]) };
    }
    return { rows: [] };
  };
}

async function drain(r: Readable): Promise<string> {
  let s = '';
  for await (const chunk of r) s += String(chunk);
  return s;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return undefined;
}

afterEach(() => {
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------------------------

describe('the source snapshot never overlaps requests on its transaction', { timeout: 15_000 }, () => {
  it('serializes rows, changes, min valid versions and table fingerprints asked for all at once', async () => {
    recorder.reset(sourceScript());
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const snap = await source.snapshot();
      // Asked for in one go, consumed in another order than asked, concurrently.
      const changes = snap.changes(orders, '90');
      const all = snap.rows(orders);
      const minValid = snap.minValidVersion(orders);
      const fingerprint = snap.tableFingerprint(orders);
      const resumed = snap.rows(orders, ['2024-01-01 00:00:00.997', '5']);
      const [resumedText, allText, changesText] = await Promise.all([drain(resumed), drain(all), drain(changes)]);
      expect(await minValid).toBe('10');
      expect(await fingerprint).toMatchObject({ 'table.trackingBegin': '7', 'table.trackingSideTable': '1001@2024-01-01T00:00:00', database_guid: 'aa' });
      expect(allText.split('\n').filter(Boolean)).toHaveLength(40);
      expect(resumedText.split('\n').filter(Boolean)).toHaveLength(40);
      expect(changesText.split('\n').filter(Boolean)[0]).toBe('U\t2024-01-01 00:00:00.997\t0\tn0');
      await snap.close();
    } finally {
      await source.close();
    }
    expect(recorder.violations).toEqual([]);
    const txConnection = recorder.sent[0]!.connection;
    const onTx = recorder.sent.filter((s) => s.connection === txConnection);
    // The version first, as the read protocol requires; the resume key in the column's declared type.
    expect(onTx[0]!.text).toContain('CHANGE_TRACKING_CURRENT_VERSION()');
    const resume = onTx.find((s) => s.text.includes('@k0'));
    expect(resume?.text).toContain('CAST(CAST(@k0 AS datetime2(3)) AS datetime)');
    expect(recorder.timeline.at(-1)).toBe(`${txConnection} COMMIT`);
  });

  it('lets a stream nobody reads hold back nothing, and closes without committing over a request after one failed', async () => {
    const base = sourceScript();
    recorder.reset((text, params, kind) =>
      text.includes('CHANGETABLE') ? { rows: [], error: { message: 'boom', number: 50000 }, delayMs: 5 } : base(text, params, kind),
    );
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const snap = await source.snapshot();
      const failing = snap.changes(orders, '90');
      snap.rows(orders); // never read
      const fp = snap.tableFingerprint(orders);
      const err = await caught(drain(failing));
      expect(err).toBeInstanceOf(MirrorError);
      expect((err as MirrorError).type).toBe(FailureType.SourceReadFailed);
      await fp;
      await snap.close();
    } finally {
      await source.close();
    }
    expect(recorder.violations).toEqual([]);
    expect(recorder.timeline.at(-1)).toMatch(/COMMIT|ROLLBACK/);
  });
});

describe('the SQL Server mirror never overlaps requests on its transactions', { timeout: 15_000 }, () => {
  /** A mirror database: no tables at first, then the shadow exists with its marker. */
  function mirrorScript(): Script {
    let marker: string | null = null;
    let lsn: string | null = null;
    return (text, params) => {
      if (text.startsWith('UPDATE') && text.includes('_mirror_shadow') && typeof params.marker === 'string') marker = params.marker;
      if (text.includes('inserted.epoch') || text.includes('_mirror_fence] WITH (HOLDLOCK)')) return { rows: [{ epoch: '1' }] };
      if (text.includes(' AS live,')) return { rows: [{ live: 1, shadow: marker ? 1 : 0 }] };
      if (text.includes('WITH (UPDLOCK, HOLDLOCK)')) return { rows: [{ lsn }] };
      if (text.includes('SELECT @@ROWCOUNT AS moved')) {
        lsn = typeof params.lsn === 'string' ? params.lsn : lsn;
        return { rows: [{ moved: 1 }] };
      }
      if (text.startsWith('UPDATE') && text.includes('_mirror_state') && typeof params.lsn === 'string') lsn = params.lsn;
      if (text.includes('SELECT marker FROM')) return { rows: marker ? [{ marker }] : [] };
      if (text.includes('AS present')) return { rows: [{ present: marker ? 1 : 0 }] };
      // One staged delete matched a row, one staged upsert replaced a row; two upserts were written.
      if (text.startsWith('DELETE m FROM') && text.includes("l.[op] = N'D'")) return { rows: [], rowsAffected: 1 };
      if (text.startsWith('DELETE m FROM') && text.includes("l.[op] = N'U'")) return { rows: [], rowsAffected: 1 };
      if (text.startsWith('INSERT INTO [acme].[items]')) return { rows: [], rowsAffected: 2 };
      if (text.startsWith('INSERT INTO')) return { rows: [], rowsAffected: 3 };
      return { rows: [], delayMs: 2 };
    };
  }

  it('applies a schema, populates in chunks, swaps in and applies change batches one request at a time', async () => {
    recorder.reset(mirrorScript());
    const mirror = new MssqlMirror({ url: URL, tenant: 'acme', schema: 'acme' });
    try {
      await mirror.ensureState();
      expect(await mirror.applySchema(items)).toEqual({ outcome: 'created' });
      const lines = Array.from({ length: 30 }, (_, i) => encodeLine([`code-${i}`, String(i)]));
      const rows = Readable.from([lines.slice(0, 10).join(''), lines.slice(10).join('')]);
      const fence = await mirror.takeFence('populate:items', 'test');
      const progress = await mirror.copyIntoShadow(items, rows, { resume: false, version: '100', fence, chunkBytes: 64, onChunk: () => undefined });
      expect(progress.rows).toBe(30);
      expect(await mirror.swapInShadow(items, '100', { database_name: 'crm' }, fence)).toEqual({ rows: 30 });
      const changes = Readable.from([encodeLine(['U', 'a', '1']) + encodeLine(['D', 'b', null]) + encodeLine(['U', 'A', '2'])]);
      const applied = await mirror.applyChanges(items, changes, {
        fromVersion: '100',
        toVersion: '101',
        fingerprint: { database_name: 'crm' },
        batchBytes: 8,
        fence: await mirror.takeFence('session', 'test'),
      });
      // Two batches (8 bytes each), each answered as: one staged delete matched, one upsert replaced a row, two written.
      expect(applied).toMatchObject({ upserts: 4, inserts: 2, updates: 2, deletes: 2 });
    } finally {
      await mirror.close();
    }
    expect(recorder.violations).toEqual([]);
    // Every transaction waits for a partner's lock at most DDL_LOCK_TIMEOUT_MS, set before anything else.
    const begins = recorder.timeline.filter((t) => t.endsWith('BEGIN TRANSACTION')).length;
    expect(recorder.sent.filter((s) => s.text === 'SET LOCK_TIMEOUT 5000').length).toBe(begins);
    // Several populations chunks and change batches, each its own transaction.
    expect(recorder.timeline.filter((t) => t.endsWith('COMMIT')).length).toBeGreaterThan(6);
    const staged = recorder.sent.filter((s) => s.kind === 'bulk' && s.text.includes('#staging'));
    expect(staged.flatMap((s) => s.rows ?? [])).toEqual([['U', 'a', '1'], ['D', 'b', null], ['U', 'A', '2']]);
    // _mirror_log: one populate row, then one sync row with the cycle's totals, each beside its state change.
    const logged = recorder.sent.filter((s) => s.text.startsWith('INSERT INTO [acme].[_mirror_log]')).map((s) => s.params);
    expect(logged).toEqual([
      expect.objectContaining({ table_name: 'items', event: 'populate', row_count: 30, to_lsn: '100', inserts: null }),
      expect.objectContaining({ table_name: 'items', event: 'sync', inserts: 2, updates: 2, deletes: 2, from_lsn: '100', to_lsn: '101' }),
    ]);
  });

  it("carries the partner's indexes and permissions to the shadow, and runs hooks, inside the swap's transaction", async () => {
    const base = mirrorScript();
    recorder.reset((text, params, kind) => {
      if (text === mirrorSqlText.PARTNER_INDEXES_SQL) {
        return {
          rows: [
            { index_name: 'by qty', index_type: 2, type_desc: 'NONCLUSTERED', is_unique: false, filter_definition: '([qty]>(0))', column_name: 'qty', key_ordinal: 1, is_included_column: false, is_descending_key: true },
            { index_name: 'by qty', index_type: 2, type_desc: 'NONCLUSTERED', is_unique: false, filter_definition: '([qty]>(0))', column_name: 'code', key_ordinal: 0, is_included_column: true, is_descending_key: false },
          ],
        };
      }
      if (text === mirrorSqlText.PARTNER_PERMISSIONS_SQL) return { rows: [{ state: 'GRANT', permission_name: 'SELECT', grantee: 'reporting', column_name: null }] };
      return base(text, params, kind);
    });
    const hooks = (event: string): { label: string; sql: string }[] =>
      event === 'afterPopulate' ? [{ label: 'mirror.hooks[1].afterPopulate', sql: 'UPDATE STATISTICS {{table}}' }] : [];
    const mirror = new MssqlMirror({ url: URL, tenant: 'acme', schema: 'acme', hooks });
    try {
      await mirror.applySchema(items);
      const fence = await mirror.takeFence('populate:items', 'test');
      await mirror.copyIntoShadow(items, Readable.from([encodeLine(['a', '1'])]), { resume: false, version: '100', fence, chunkBytes: 64, onChunk: () => undefined });
      await mirror.swapInShadow(items, '100', { database_name: 'crm' }, fence);
    } finally {
      await mirror.close();
    }
    expect(recorder.violations).toEqual([]);
    const swap = recorder.sent.slice(recorder.sent.findIndex((s) => s.text === mirrorSqlText.PARTNER_INDEXES_SQL));
    const order = swap.map((s) => s.text.split('\n')[0]!.slice(0, 60));
    const at = (prefix: string): number => order.findIndex((t) => t.startsWith(prefix));
    expect(swap.find((s) => s.text.startsWith('CREATE NONCLUSTERED'))?.text).toBe(
      'CREATE NONCLUSTERED INDEX [by qty] ON [acme].[items__shadow] ([qty] DESC) INCLUDE ([code]) WHERE ([qty]>(0))',
    );
    expect(swap.find((s) => s.text.startsWith('GRANT'))?.text).toBe('GRANT SELECT ON [acme].[items__shadow] TO [reporting]');
    // Built on the shadow before it is renamed into place; the hook runs last, as a batch, on the live table.
    expect(at('CREATE NONCLUSTERED')).toBeLessThan(at('IF OBJECT_ID(@live'));
    expect(at('GRANT')).toBeLessThan(at('IF OBJECT_ID(@live'));
    expect(order.at(-1)).toBe('UPDATE STATISTICS [acme].[items]');
    expect(swap.at(-1)?.kind).toBe('batch');
    // One transaction: nothing committed between the carry-over and the hook.
    const swapTimeline = recorder.timeline.slice(recorder.timeline.findIndex((t) => t.includes('SELECT i.name AS index_name')));
    expect(swapTimeline.filter((t) => t.endsWith('COMMIT'))).toHaveLength(1);
    expect(swapTimeline.at(-1)).toMatch(/COMMIT$/);
  });

  it('fails the table when a hook fails, rolling the create back', async () => {
    const base = mirrorScript();
    recorder.reset((text, params, kind) => (text.startsWith('CREATE INDEX') ? { error: { message: "Incorrect syntax near 'x'.", number: 102 } } : base(text, params, kind)));
    const hooks = (event: string): { label: string; sql: string }[] =>
      event === 'afterCreate' ? [{ label: 'mirror.hooks[1].afterCreate', sql: 'CREATE INDEX x ON {{table}} (qty' }] : [];
    const mirror = new MssqlMirror({ url: URL, tenant: 'acme', schema: 'acme', hooks });
    try {
      const err = await caught(mirror.applySchema(items));
      expect((err as MirrorError).type).toBe(FailureType.TableFailed);
      expect((err as MirrorError).message).toMatch(/afterCreate hook mirror\.hooks\[1\]\.afterCreate failed: Incorrect syntax.*\[tenant acme, mirror, table items, apply schema\]/);
    } finally {
      await mirror.close();
    }
    expect(recorder.timeline.at(-1)).toMatch(/ROLLBACK$/);
  });

  it('fails a key the mirror cannot hold before writing anything of its batch, and rolls back cleanly', async () => {
    recorder.reset(mirrorScript());
    const mirror = new MssqlMirror({ url: URL, tenant: 'acme', schema: 'acme' });
    try {
      const secret = 'k'.repeat(451);
      const rows = Readable.from([encodeLine(['fine', '1']) + encodeLine([secret, '2'])]);
      const fence = { scope: 'populate:items', epoch: '1' };
      const err = await caught(mirror.copyIntoShadow(items, rows, { resume: false, version: '100', fence, chunkBytes: 1 << 20, onChunk: () => undefined }));
      expect(err).toBeInstanceOf(MirrorError);
      expect((err as MirrorError).type).toBe(FailureType.TableFailed);
      expect((err as MirrorError).message).toMatch(/column code has 451 UTF-16 characters.*\[tenant acme, mirror, table items, populate\]/);
      expect((err as MirrorError).message).not.toContain('kkkk');
      expect(recorder.sent.some((s) => s.kind === 'bulk')).toBe(false);
    } finally {
      await mirror.close();
    }
    expect(recorder.violations).toEqual([]);
  });

  it('reports a duplicate key (keys equal only under SQL Server rules) as TableFailed without the driver message', async () => {
    const base = mirrorScript();
    recorder.reset((text, params, kind) =>
      text.startsWith('INSERT INTO [acme].[items__shadow]')
        ? { error: { message: "Violation of PRIMARY KEY constraint. The duplicate key value is (x ).", number: 2627 } }
        : base(text, params, kind),
    );
    const mirror = new MssqlMirror({ url: URL, tenant: 'acme', schema: 'acme' });
    try {
      const rows = Readable.from([encodeLine(['x', '1']) + encodeLine(['x ', '2'])]);
      const fence = { scope: 'populate:items', epoch: '1' };
      const err = await caught(mirror.copyIntoShadow(items, rows, { resume: false, version: '100', fence, chunkBytes: 1 << 20, onChunk: () => undefined }));
      expect((err as MirrorError).type).toBe(FailureType.TableFailed);
      expect((err as MirrorError).message).toContain('trailing spaces');
      expect((err as MirrorError).message).not.toContain('duplicate key value');
    } finally {
      await mirror.close();
    }
    expect(recorder.violations).toEqual([]);
    expect(recorder.timeline.some((t) => t.endsWith('ROLLBACK'))).toBe(true);
  });
});

describe('issue 13 defects that need the driver', { timeout: 15_000 }, () => {
  it('5: a login without VIEW CHANGE TRACKING fails AuthFailed naming the grant, not TrackingExpired', async () => {
    recorder.reset(sourceScript({ minValid: null, canView: 0 }));
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const snap = await source.snapshot();
      const err = await caught(snap.minValidVersion(orders));
      expect(err).toBeInstanceOf(MirrorError);
      expect((err as MirrorError).type).toBe(FailureType.AuthFailed);
      expect((err as MirrorError).message).toContain('GRANT VIEW CHANGE TRACKING ON [dbo].[orders] TO [reader]');
      expect((err as MirrorError).message).not.toContain('secret');
      const streamErr = await caught(drain(snap.changes(orders, '90')));
      expect((streamErr as MirrorError).type).toBe(FailureType.AuthFailed);
      await snap.close();
      // Not tracked at all (the permission is there): still null, for the caller's own rules.
      recorder.reset(sourceScript({ minValid: null, canView: 1 }));
      const again = await source.snapshot();
      expect(await again.minValidVersion(orders)).toBeNull();
      await again.close();
    } finally {
      await source.close();
    }
  });

  it('6: a login that cannot see sys.database_recovery_status still opens snapshots', async () => {
    recorder.reset(sourceScript({ fingerprint: { ...FINGERPRINT_ROW, database_guid: null, recovery_fork_guid: null } }));
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const snap = await source.snapshot();
      expect(snap.fingerprint).toEqual({ database_name: 'crm', create_date: '2024-01-01T00:00:00.000', database_guid: 'unavailable', recovery_fork_guid: 'unavailable' });
      await snap.close();
    } finally {
      await source.close();
    }
  });

  it('8: the table fingerprint reads unavailable for a table not tracked (or not visible)', async () => {
    recorder.reset(sourceScript({ tracking: null }));
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const snap = await source.snapshot();
      expect(await snap.tableFingerprint(orders)).toMatchObject({ 'table.trackingBegin': 'unavailable', 'table.trackingSideTable': 'unavailable' });
      await snap.close();
    } finally {
      await source.close();
    }
    expect(recorder.violations).toEqual([]);
  });

  /** A database whose tracking state is given; records what DDL was attempted. */
  function trackingScript(db: { retention_period: number | null; retention_period_units: number | null; states: number[] }, opts: { tracked?: boolean; deny?: number; trackedHidden?: boolean } = {}): Script {
    let reads = 0;
    return (text, _params, kind) => {
      if (text.includes('sys.change_tracking_databases')) {
        const state = db.states[Math.min(reads++, db.states.length - 1)];
        const current = db.retention_period === null && !opts.trackedHidden ? null : '5';
        return { rows: [{ database_name: 'crm', retention_period: db.retention_period, retention_period_units: db.retention_period_units, snapshot_isolation_state: state, current_version: current }] };
      }
      if (text.includes('AS tracked')) return { rows: [{ tracked: opts.tracked ? 1 : 0 }] };
      if (kind === 'batch' && opts.deny !== undefined) return { error: { message: 'permission denied', number: opts.deny } };
      return { rows: [] };
    };
  }

  async function withPool<T>(fn: (pool: sql.ConnectionPool) => Promise<T>): Promise<T> {
    const pool = await new sql.ConnectionPool({ server: 'fake' }).connect();
    try {
      return await fn(pool);
    } finally {
      await pool.close();
    }
  }

  it('7: tracking that works is left as it is; a shorter retention is a warning, emitted once', async () => {
    recorder.reset(trackingScript({ retention_period: 2, retention_period_units: 3, states: [1] }, { tracked: true }));
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      expect(await source.enableTracking(orders, 7 * 24 * 3600_000)).toBe(false);
      expect(await source.enableTracking(orders, 7 * 24 * 3600_000)).toBe(false);
    } finally {
      await source.close();
    }
    expect(recorder.sent.filter((s) => /ALTER (DATABASE|TABLE)/.test(s.text))).toEqual([]);
    expect(source.warnings).toHaveLength(1);
    expect(source.warnings[0]).toContain('tenant acme: change tracking retention of database [crm] is 2880 minutes');
    expect(emitted).toHaveBeenCalledTimes(1);
  });

  it('7: tracking the catalog hides from the login (on, by its current version) is not enabled again', async () => {
    recorder.reset(trackingScript({ retention_period: null, retention_period_units: null, states: [1] }, { tracked: true, trackedHidden: true }));
    await withPool(async (pool) => {
      expect(await enableTracking(pool, orders, 24 * 3600_000)).toEqual({ enabled: false, warning: null });
    });
    expect(recorder.sent.filter((s) => s.kind === 'batch')).toEqual([]);
  });

  it('7: snapshot isolation "going on" is waited for, and fails retryably if it stays so', async () => {
    recorder.reset(trackingScript({ retention_period: 7, retention_period_units: 3, states: [3, 3, 1] }, { tracked: true }));
    await withPool(async (pool) => {
      expect(await enableTracking(pool, orders, 24 * 3600_000, { timeoutMs: 5_000, pollMs: 1 })).toEqual({ enabled: false, warning: null });
    });
    expect(recorder.sent.filter((s) => s.text.includes('ALLOW_SNAPSHOT_ISOLATION'))).toEqual([]);

    recorder.reset(trackingScript({ retention_period: 7, retention_period_units: 3, states: [3] }, { tracked: true }));
    const err = await withPool((pool) => caught(enableTracking(pool, orders, 24 * 3600_000, { timeoutMs: 20, pollMs: 5 })));
    expect(err).toBeInstanceOf(MirrorError);
    expect((err as MirrorError).type).toBe(FailureType.SourceReadFailed);
    expect((err as MirrorError).retryable).toBe(true);
  });

  it('7: a login that may not enable tracking fails AuthFailed naming the statement a DBA can run', async () => {
    recorder.reset(trackingScript({ retention_period: 7, retention_period_units: 3, states: [1] }, { deny: 4902 }));
    const err = await withPool((pool) => caught(enableTracking(pool, orders, 24 * 3600_000)));
    expect((err as MirrorError).type).toBe(FailureType.AuthFailed);
    expect((err as MirrorError).message).toContain('ALTER TABLE [dbo].[orders] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)');
    // Tracking off on the database: enabled with the tenant's retention, as before.
    recorder.reset(trackingScript({ retention_period: null, retention_period_units: null, states: [0, 1] }));
    await withPool((pool) => enableTracking(pool, orders, 24 * 3600_000, { timeoutMs: 1_000, pollMs: 1 }));
    const ddl = recorder.sent.filter((s) => s.kind === 'batch').map((s) => s.text.split('\n')[1]);
    expect(ddl).toEqual([
      'ALTER DATABASE [crm] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 1 DAYS, AUTO_CLEANUP = ON)',
      'ALTER DATABASE [crm] SET ALLOW_SNAPSHOT_ISOLATION ON',
      'ALTER TABLE [dbo].[orders] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)',
    ]);
  });

  it('10: a table with a clustered columnstore index is skipped with a reason', async () => {
    const column = (table: string, name: string, key: number | null, cci: boolean) => ({
      schema_name: 'dbo', table_name: table, column_name: name, column_id: 1, type_name: 'int', is_clr: false,
      max_length: 4, precision: 10, scale: 0, is_nullable: key === null, key_ordinal: key, clustered_columnstore: cci,
    });
    recorder.reset((text) => (text.includes('FROM sys.tables AS t') ? { rows: [column('facts', 'id', 1, true), column('plain', 'id', 1, false)] } : { rows: [] }));
    const source = new MssqlChangeSource({ url: URL, tenant: 'acme' });
    try {
      const listed = await source.listTables(() => true);
      expect(listed.tables.map((t) => t.name)).toEqual(['plain']);
      expect(listed.skipped).toEqual([{ name: 'facts', reason: expect.stringContaining('clustered columnstore') }]);
    } finally {
      await source.close();
    }
  });
});
