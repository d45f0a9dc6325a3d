/**
 * A counting semaphore, first come first served: at most `max` holders at once, the others wait (up to a
 * timeout). Used for the worker-wide cap on connections to one mirror server across all its tenants.
 */
export class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  get inUse(): number {
    return this.held;
  }

  /** Takes a slot; false when none came free within `timeoutMs`. */
  acquire(timeoutMs: number): Promise<boolean> {
    if (this.held < this.max) {
      this.held += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        clearTimeout(timer);
        this.held += 1;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      this.waiting.push(grant);
    });
  }

  release(): void {
    this.held = Math.max(0, this.held - 1);
    const next = this.waiting.shift();
    if (next) next();
  }
}

const byKey = new Map<string, Slots>();

/** The one Slots per key in this process (the first caller's `max` sets it). */
export function sharedSlots(key: string, max: number): Slots {
  let slots = byKey.get(key);
  if (!slots) {
    slots = new Slots(max);
    byKey.set(key, slots);
  }
  return slots;
}
