/**
 * Which workers are alive, from Temporal's worker heartbeats (ListWorkers). A worker process heartbeats every few
 * seconds (`WORKER_HEARTBEAT_MS`, set in the worker runtime); one whose heartbeat time has not moved for
 * `DEAD_AFTER_MS`, measured on this process's own monotonic clock, is taken for dead. Comparing heartbeat times
 * with each other rather than with our wall clock makes the verdict immune to clock skew between hosts.
 */

/** How often each worker process heartbeats to the server (the SDK accepts 1–60 s). */
export const WORKER_HEARTBEAT_MS = 5_000;
/** Three missed heartbeats. */
export const DEAD_AFTER_MS = 3 * WORKER_HEARTBEAT_MS;
const FORGET_AFTER_MS = 60 * 60_000;

export interface WorkerSighting {
  identity: string;
  instanceKey: string;
  /** The heartbeat time the server holds for this instance (milliseconds since the epoch, the worker's clock). */
  heartbeatAt: number;
  /** The worker said it is shutting down or has shut down. */
  stopped: boolean;
}

interface Instance {
  identity: string;
  heartbeatAt: number;
  /** When (our monotonic clock) we last saw its heartbeat time move. */
  movedAt: number;
  stopped: boolean;
}

export class Liveness {
  private readonly instances = new Map<string, Instance>();
  private watchingSince: number | null = null;

  /** Records one ListWorkers answer, taken at `now` (a monotonic clock: performance.now()). */
  observe(sightings: WorkerSighting[], now: number): void {
    this.watchingSince ??= now;
    const listed = new Set(sightings.map((s) => s.instanceKey));
    // Instances the server no longer lists and that have been silent for long are forgotten (restarts add new ones).
    for (const [key, i] of this.instances) if (!listed.has(key) && now - i.movedAt > FORGET_AFTER_MS) this.instances.delete(key);
    for (const s of sightings) {
      const known = this.instances.get(s.instanceKey);
      if (!known || s.heartbeatAt > known.heartbeatAt) {
        this.instances.set(s.instanceKey, { identity: s.identity, heartbeatAt: s.heartbeatAt, movedAt: now, stopped: s.stopped });
      } else {
        known.stopped = s.stopped;
      }
    }
  }

  /** Identities with at least one instance heartbeating. */
  alive(now: number): Set<string> {
    const alive = new Set<string>();
    for (const i of this.instances.values()) if (!i.stopped && now - i.movedAt < DEAD_AFTER_MS) alive.add(i.identity);
    return alive;
  }

  /**
   * Whether `identity` is dead: it was seen and stopped heartbeating, or it has never been seen although we have
   * been watching for longer than a worker takes to send its first heartbeat.
   */
  isDead(identity: string, now: number): boolean {
    if (this.alive(now).has(identity)) return false;
    const seen = [...this.instances.values()].some((i) => i.identity === identity);
    return seen || (this.watchingSince !== null && now - this.watchingSince >= DEAD_AFTER_MS);
  }

  /** Identities seen heartbeating once that are dead now. */
  deadSeen(now: number): string[] {
    const alive = this.alive(now);
    return [...new Set([...this.instances.values()].map((i) => i.identity))].filter((id) => !alive.has(id));
  }

  /** Whether the server ever listed this identity. */
  seen(identity: string): boolean {
    return [...this.instances.values()].some((i) => i.identity === identity);
  }

  /**
   * The one worker that reaps the dead: the smallest identity among the living (including ourselves, whose own
   * heartbeat may not have reached the server yet). Every worker computes the same answer from the same sightings,
   * so two reapers at once happen only while their views differ, and then cost a session restart, never data.
   */
  leader(self: string, now: number): string {
    return [...this.alive(now), self].sort()[0]!;
  }
}
