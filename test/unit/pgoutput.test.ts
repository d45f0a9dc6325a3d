/**
 * The pgoutput parser on messages a PostgreSQL 15 server sent (captured from pg_logical_slot_peek_binary_changes
 * with proto_version 1: a partitioned table with REPLICA IDENTITY FULL on one leaf), and on hand-built ones for
 * what the capture lacks; plus the xid and LSN arithmetic, and how keys are taken from tuples.
 */
import { describe, expect, it } from 'vitest';
import { fullXid, formatLsn, parseLsn, parsePgOutput, PgOutputError, Tuple, UNCHANGED_TOAST, type PgOutputMessage } from '../../src/postgres/pgoutput';
import { keyOf, sameKey } from '../../src/postgres/decoded-changes';

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const text = (t: Tuple): (string | null | 'unchanged')[] =>
  t.values().map((v) => (v === UNCHANGED_TOAST ? 'unchanged' : v === null ? null : v.toString('utf8')));

describe('parsePgOutput', () => {
  it('reads Begin and Commit: the transaction, its commit LSN, end LSN and time', () => {
    const begin = parsePgOutput(hex('42 0000000001923930 000304a97e32a178 000002e7'));
    expect(begin).toEqual({ tag: 'begin', finalLsn: parseLsn('0/1923930'), commitTime: 0x000304a97e32a178n, xid: 0x2e7 });
    const commit = parsePgOutput(hex('43 00 0000000001923930 0000000001923960 000304a97e32a178'));
    expect(commit).toEqual({ tag: 'commit', commitLsn: parseLsn('0/1923930'), endLsn: parseLsn('0/1923960'), commitTime: 0x000304a97e32a178n });
  });

  it('reads a Relation: oid, names, replica identity and columns with their key flags', () => {
    const m = parsePgOutput(hex('52 0000400f 7075626c696300 6d5f6100 66 0003 01 696400 00000017 ffffffff 01 7200 00000019 ffffffff 00 7600 00000017 ffffffff'));
    if (m.tag !== 'relation') throw new Error(m.tag);
    expect([m.relid, m.schema.toString(), m.name.toString(), m.replicaIdentity]).toEqual([0x400f, 'public', 'm_a', 'f']);
    expect(m.columns.map((c) => [c.name.toString(), c.key, c.typeOid, c.typmod])).toEqual([
      ['id', true, 23, -1],
      ['r', true, 25, -1],
      ['v', false, 23, -1],
    ]);
  });

  it('reads Insert, Update (with the old row) and Delete tuples', () => {
    const ins = parsePgOutput(hex('49 0000400f 4e 0003 74 00000001 31 74 00000001 61 74 00000001 31')) as Extract<PgOutputMessage, { tag: 'insert' }>;
    expect([ins.relid, text(ins.newTuple)]).toEqual([0x400f, ['1', 'a', '1']]);
    const upd = parsePgOutput(
      hex('55 0000400f 4f 0003 74 00000001 31 74 00000001 61 74 00000001 31 4e 0003 74 00000001 31 74 00000001 61 74 00000001 35'),
    ) as Extract<PgOutputMessage, { tag: 'update' }>;
    expect([upd.old?.kind, text(upd.old!.tuple), text(upd.newTuple)]).toEqual(['O', ['1', 'a', '1'], ['1', 'a', '5']]);
    const noOld = parsePgOutput(hex('55 0000400f 4e 0002 6e 75')) as Extract<PgOutputMessage, { tag: 'update' }>;
    expect([noOld.old, text(noOld.newTuple)]).toEqual([null, [null, 'unchanged']]);
    const del = parsePgOutput(hex('44 0000400f 4b 0002 74 00000002 3432 6e')) as Extract<PgOutputMessage, { tag: 'delete' }>;
    expect([del.old.kind, text(del.old.tuple)]).toEqual(['K', ['42', null]]);
  });

  it('reads a Truncate of several relations and its options', () => {
    expect(parsePgOutput(hex('54 00000002 00 0000400f 00004016'))).toEqual({ tag: 'truncate', relids: [0x400f, 0x4016], cascade: false, restartIdentity: false });
    expect(parsePgOutput(hex('54 00000001 03 0000400f'))).toMatchObject({ cascade: true, restartIdentity: true });
  });

  it('passes over Origin, Type and logical messages, and refuses what it cannot read', () => {
    expect(parsePgOutput(hex('4f 0000000000000001 6f7269676900'))).toEqual({ tag: 'other', type: 'O' });
    expect(() => parsePgOutput(hex('49 0000400f 4e 0001 74 00000005 31'))).toThrow(PgOutputError); // value cut short
    expect(() => parsePgOutput(hex('49 0000400f 4e 0001 62 00000001 31'))).toThrow(/kind "b"/); // binary: never asked for
    expect(() => parsePgOutput(hex('5a'))).toThrow(/unknown pgoutput message type "Z"/);
    expect(() => parsePgOutput(hex('42 0000000001923930 000304a97e32a178 000002e7 00'))).toThrow(/unread bytes/);
  });
});

describe('xids and LSNs', () => {
  it('widens a 32-bit xid to the full xid it had, before or after the reference and across an epoch boundary', () => {
    expect(fullXid(743, 800n)).toBe(743n);
    expect(fullXid(900, 800n)).toBe(900n); // began after the reference was read
    const near = (5n << 32n) + 10n;
    expect(fullXid(3, near)).toBe((5n << 32n) + 3n);
    expect(fullXid(0xfffffff0, near)).toBe((4n << 32n) + 0xfffffff0n);
    expect(fullXid(20, (4n << 32n) + 0xfffffff0n)).toBe((5n << 32n) + 20n);
  });

  it('formats and parses pg_lsn text', () => {
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
    expect(parseLsn('0/0')).toBe(0n);
    expect(() => parseLsn('16-B374')).toThrow(PgOutputError);
  });
});

describe('keys from decoded tuples', () => {
  const tuple = (hexTuple: string, message = hex(`49 00000001 4e ${hexTuple}`)): Tuple =>
    (parsePgOutput(message) as Extract<PgOutputMessage, { tag: 'insert' }>).newTuple;

  it('takes the key columns by position, a missing column as NULL, and copies them out of the message', () => {
    const message = hex('49 00000001 4e 0003 74 00000001 61 74 00000001 62 74 00000001 63');
    const key = keyOf({ keyIndexes: [2, 0, -1] }, tuple('', message));
    // The driver reuses its buffer once the message is handled: the key must not change with it.
    message.fill(0x7a);
    expect(key.map((k) => k?.toString() ?? null)).toEqual(['c', 'a', null]);
  });

  it('takes an unchanged TOASTed key column from the old row, and compares keys by their bytes', () => {
    const now = tuple('0002 75 74 00000001 78');
    const old = tuple('0002 74 00000003 6b6579 74 00000001 79');
    expect(keyOf({ keyIndexes: [0] }, now, old).map(String)).toEqual(['key']);
    expect(keyOf({ keyIndexes: [0] }, now)).toEqual([null]);
    expect(sameKey([Buffer.from('a'), null], [Buffer.from('a'), null])).toBe(true);
    expect(sameKey([Buffer.from('a')], [Buffer.from('b')])).toBe(false);
    expect(sameKey([null], [Buffer.from('')])).toBe(false);
  });
});
