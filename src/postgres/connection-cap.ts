/**
 * The worker's cap on connections to one mirror server (host and port), across all its tenants:
 * TENANT_MIRROR_MIRROR_CONNECTIONS (default 1000). Each pool's clients take a slot before they connect and give it
 * back when their connection ends, so idle pooled connections count too: the cap is on what the partner's server
 * sees. A client that finds no slot within its wait fails as MirrorBusy (retried later), naming the cap.
 *
 * A running sync session keeps its mirror connection between cycles, so the cap is also the number of tenants
 * one worker can mirror on that server at once: the default must not bind below a worker's activity slots (a
 * default of 64 left 36 of 100 benchmark tenants waiting for ever for their populations' connections).
 */
import { Client, type ClientConfig } from 'pg';
import { FailureType, MirrorError } from '../core/errors';
import { sharedSlots, type Slots } from '../core/slots';

export const DEFAULT_MIRROR_CONNECTIONS = 1000;

export function mirrorConnectionCap(url: string, env: NodeJS.ProcessEnv = process.env): { slots: Slots; server: string } {
  const raw = env.TENANT_MIRROR_MIRROR_CONNECTIONS?.trim();
  const max = raw ? Number(raw) : DEFAULT_MIRROR_CONNECTIONS;
  if (!Number.isInteger(max) || max < 1) {
    throw new MirrorError(FailureType.BadConfig, `TENANT_MIRROR_MIRROR_CONNECTIONS must be a whole number ≥ 1, not ${JSON.stringify(raw)}`);
  }
  const { hostname, port } = new URL(url);
  const server = `${hostname}:${port || '5432'}`;
  return { slots: sharedSlots(`postgres mirror ${server}`, max), server };
}

type ConnectCallback = ((err: Error) => void) | ((err: null, c: Client) => void);

/** A pg Client class whose connections hold a slot of `cap` for as long as they are open. */
export function cappedClient(cap: { slots: Slots; server: string }, waitMs: number): typeof Client {
  return class CappedClient extends Client {
    constructor(config?: string | ClientConfig) {
      super(config);
    }

    // pg-pool connects with a callback; direct users get a promise.
    override connect(): Promise<Client>;
    override connect(callback: ConnectCallback): void;
    override connect(callback?: ConnectCallback): Promise<Client> | void {
      const done = this.connectHoldingSlot().then(() => this as Client);
      if (!callback) return done;
      done.then(
        (c) => (callback as (err: null, c: Client) => void)(null, c),
        (err: Error) => (callback as (err: Error) => void)(err),
      );
    }

    private async connectHoldingSlot(): Promise<void> {
      if (!(await cap.slots.acquire(waitMs))) {
        throw new MirrorError(
          FailureType.MirrorBusy,
          `this worker already holds ${cap.slots.max} connections to the mirror server ${cap.server} (TENANT_MIRROR_MIRROR_CONNECTIONS): waiting for one to close`,
        );
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        cap.slots.release();
      };
      this.once('end', release);
      try {
        await super.connect();
      } catch (err) {
        release();
        throw err;
      }
    }
  };
}
