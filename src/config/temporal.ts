/**
 * Which Temporal to talk to. TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE select an existing cluster; without them the
 * CLI talks to the embedded dev server on 127.0.0.1:7233 (`worker` and `demo` start it: dev/temporal/embedded.ts).
 */

export const EMBEDDED_PORT = 7233;
export const EMBEDDED_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  embedded: boolean;
}

export function temporalTarget(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  if (env.TEMPORAL_ADDRESS) {
    return { address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE || 'default', embedded: false };
  }
  return { address: `127.0.0.1:${EMBEDDED_PORT}`, namespace: env.TEMPORAL_NAMESPACE || 'default', embedded: true };
}
