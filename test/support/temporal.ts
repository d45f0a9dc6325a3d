/** Access to the run's shared Temporal dev server and workflow bundle (see global-setup.ts). */
import { inject } from 'vitest';

export function sharedTemporal(): { address: string; namespace: string; workflowBundlePath: string } {
  return {
    address: inject('temporalAddress'),
    namespace: inject('temporalNamespace'),
    workflowBundlePath: inject('workflowBundlePath'),
  };
}
