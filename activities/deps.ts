/**
 * What the activities need from the outside world, injected by the worker (and by tests): configuration by
 * tenant id, and a way to open each side. Connections are opened per activity and closed at its end, so a
 * paused or blocked tenant holds none.
 */
import type { ChangeSource, Mirror } from '../src/core/types';
import type { TenantConfig } from '../src/config/schema';
import type { Logger } from '../src/logging';
import type { MirrorMetrics } from '../src/metrics';

export interface ActivityDeps {
  loadTenant(tenantId: string): TenantConfig;
  openSource(tenant: TenantConfig): ChangeSource;
  openMirror(tenant: TenantConfig): Mirror;
  logger: Logger;
  /** Where the activities record what they did (served on the worker's metrics endpoint). */
  metrics: MirrorMetrics;
  /** This worker's identity, recorded with the fences its activities take (who wrote the mirror). */
  identity?: string;
  /** Aborted when the worker drains (SIGTERM): long activities stop at their next safe point. */
  draining?: AbortSignal;
}

export interface Sides {
  tenant: TenantConfig;
  source: ChangeSource;
  mirror: Mirror;
}

/** Opens both sides for one activity and always closes them. */
export async function withSides<T>(deps: ActivityDeps, tenantId: string, body: (sides: Sides) => Promise<T>): Promise<T> {
  const tenant = deps.loadTenant(tenantId);
  const source = deps.openSource(tenant);
  const mirror = deps.openMirror(tenant);
  try {
    return await body({ tenant, source, mirror });
  } finally {
    await Promise.allSettled([source.close(), mirror.close()]);
  }
}
