/**
 * A worker's identity, as Temporal records it on every activity the worker runs (`lastWorkerIdentity`). Set
 * TENANT_MIRROR_WORKER_ID to a name that is stable across restarts and unique among running workers (a
 * StatefulSet pod name, a compose service name): a restarted worker then reclaims its predecessor's sessions at
 * once. Without it the identity is `<host>:<pid>`, and a restarted worker's old sessions move once the fleet
 * sees the old process stopped heartbeating.
 */
import { hostname } from 'node:os';
import { FailureType, MirrorError } from '../core/errors';

export interface WorkerIdentity {
  name: string;
  /** Whether the name survives a restart (it was configured), so sessions under it are this worker's to reclaim. */
  stable: boolean;
}

const VALID = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/;

export function workerIdentity(env: NodeJS.ProcessEnv = process.env): WorkerIdentity {
  const configured = env.TENANT_MIRROR_WORKER_ID?.trim();
  if (!configured) return { name: `${hostname()}:${process.pid}`, stable: false };
  if (!VALID.test(configured)) {
    throw new MirrorError(
      FailureType.BadConfig,
      'TENANT_MIRROR_WORKER_ID: use 1–200 letters, digits and . _ : @ / - (starting with a letter or digit)',
    );
  }
  return { name: configured, stable: true };
}
