/**
 * Keeps the Temporal worker's own log (every retried activity failure, worker state changes, the core's
 * warnings about activities completing after their workflow was terminated by a test) out of the test output;
 * errors still show. Import it first in a test file that runs a worker.
 */
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import { WORKER_HEARTBEAT_MS } from '../../src/fleet/liveness';

Runtime.install({
  // As a worker process sets it (src/worker.ts): the fleet's liveness signal.
  workerHeartbeatInterval: WORKER_HEARTBEAT_MS,
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} } },
});
