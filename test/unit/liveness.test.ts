import { describe, expect, it } from 'vitest';
import { DEAD_AFTER_MS, Liveness, type WorkerSighting } from '../../src/fleet/liveness';

const seen = (identity: string, instanceKey: string, heartbeatAt: number, stopped = false): WorkerSighting => ({ identity, instanceKey, heartbeatAt, stopped });

describe('worker liveness from worker heartbeats', () => {
  it('a worker whose heartbeat time stops moving is dead after DEAD_AFTER_MS of our own clock, whatever its clock says', () => {
    const l = new Liveness();
    // w2's clock runs an hour behind: only whether its heartbeat time moves matters.
    l.observe([seen('w1', 'a', 1_000_000), seen('w2', 'b', -3_600_000)], 0);
    l.observe([seen('w1', 'a', 1_005_000), seen('w2', 'b', -3_595_000)], 5_000);
    expect([...l.alive(5_000)].sort()).toEqual(['w1', 'w2']);
    // w1 stops heartbeating at 5 s.
    for (let t = 10_000; t <= 5_000 + DEAD_AFTER_MS; t += 5_000) l.observe([seen('w1', 'a', 1_005_000), seen('w2', 'b', -3_600_000 + t)], t);
    expect(l.isDead('w1', 5_000 + DEAD_AFTER_MS)).toBe(true);
    expect(l.isDead('w2', 5_000 + DEAD_AFTER_MS)).toBe(false);
    expect(l.deadSeen(5_000 + DEAD_AFTER_MS)).toEqual(['w1']);
  });

  it('a restarted worker under the same identity is alive through its new instance', () => {
    const l = new Liveness();
    l.observe([seen('w1', 'old', 100)], 0);
    l.observe([seen('w1', 'old', 100), seen('w1', 'new', 200)], DEAD_AFTER_MS + 1);
    expect(l.isDead('w1', DEAD_AFTER_MS + 1)).toBe(false);
  });

  it('a worker that reported its shutdown is dead at once; one shutting down is not', () => {
    const l = new Liveness();
    l.observe([seen('w1', 'a', 100, true), seen('w2', 'b', 100)], 0);
    expect(l.isDead('w1', 1)).toBe(true);
    expect(l.isDead('w2', 1)).toBe(false);
  });

  it('an identity never listed is judged only after watching for DEAD_AFTER_MS', () => {
    const l = new Liveness();
    l.observe([], 0);
    expect(l.isDead('ghost', 1_000)).toBe(false);
    l.observe([], DEAD_AFTER_MS);
    expect(l.isDead('ghost', DEAD_AFTER_MS)).toBe(true);
    expect(l.seen('ghost')).toBe(false);
  });

  it('every worker elects the same leader: the smallest live identity, itself included', () => {
    const l = new Liveness();
    l.observe([seen('w-b', '1', 10), seen('w-c', '2', 10)], 0);
    expect(l.leader('w-a', 1)).toBe('w-a');
    expect(l.leader('w-c', 1)).toBe('w-b');
    l.observe([seen('w-b', '1', 10), seen('w-c', '2', 20)], DEAD_AFTER_MS + 1);
    // w-b stopped: w-c leads.
    expect(l.leader('w-c', DEAD_AFTER_MS + 1)).toBe('w-c');
  });
});
