/**
 * The worker-wide cap on connections to one mirror server, on a real PostgreSQL: connections of different pools
 * (tenants) to one server share it, idle pooled connections count, a connection beyond it waits and then fails as
 * MirrorBusy naming the cap, and a closed connection frees its slot.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { MirrorError } from '../../src/core/errors';
import { Slots } from '../../src/core/slots';
import { createPgPool } from '../../src/postgres/connection';
import { cappedClient, mirrorConnectionCap } from '../../src/postgres/connection-cap';
import { query } from '../support/checksum';
import { waitFor } from '../support/wait';

let server: EmbeddedPg;
let url: string;

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'connection-cap') });
  url = await server.createDatabase('capped');
});
afterAll(async () => {
  await server?.stop();
});

const ours = async (): Promise<number> =>
  Number((await query<{ n: string }>(url, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'capped-test'`))[0]!.n);

describe('connections to one mirror server', () => {
  it('two pools share the cap; one more waits, then fails as MirrorBusy; a closed one frees its slot', async () => {
    const cap = { slots: new Slots(2), server: `127.0.0.1:${server.port}` };
    const Client = cappedClient(cap, 500);
    const tenantA = createPgPool(url, { max: 4, applicationName: 'capped-test', Client });
    const tenantB = createPgPool(url, { max: 4, applicationName: 'capped-test', Client });
    try {
      const a1 = await tenantA.connect();
      const b1 = await tenantB.connect();
      expect(await ours()).toBe(2);
      const refused = await tenantB.connect().then(
        () => null,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(MirrorError);
      expect((refused as MirrorError).type).toBe('MirrorBusy');
      expect((refused as MirrorError).message).toMatch(/already holds 2 connections to the mirror server 127\.0\.0\.1:\d+ \(TENANT_MIRROR_MIRROR_CONNECTIONS\)/);
      // An idle pooled connection still holds its slot: released to the pool is not closed.
      a1.release();
      expect(cap.slots.inUse).toBe(2);
      // Closed (destroyed), it frees the slot for the other tenant, which waits for it.
      const waiting = tenantB.connect();
      await tenantA.end();
      const b2 = await waiting;
      expect(await ours()).toBe(2);
      b1.release();
      b2.release();
    } finally {
      await Promise.allSettled([tenantA.end(), tenantB.end()]);
    }
    // Every connection closed, every slot back (a connection's slot returns when its socket has closed).
    await waitFor(() => cap.slots.inUse === 0, { timeoutMs: 5_000, what: 'every slot released' });
    expect(await ours()).toBe(0);
  });

  it('reads its size from TENANT_MIRROR_MIRROR_CONNECTIONS and refuses a bad one', () => {
    const cap = mirrorConnectionCap('postgres://u@db.example:6543/x', { TENANT_MIRROR_MIRROR_CONNECTIONS: '7' });
    expect(cap).toMatchObject({ server: 'db.example:6543' });
    expect(cap.slots.max).toBe(7);
    expect(() => mirrorConnectionCap('postgres://u@db2.example/x', { TENANT_MIRROR_MIRROR_CONNECTIONS: 'lots' })).toThrow(/must be a whole number/);
  });
});
