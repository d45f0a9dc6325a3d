/**
 * Keeps the Temporal worker's own log (every retried activity failure, worker state changes, the core's
 * warnings about activities completing after their workflow was terminated by a test) out of the test output;
 * errors still show. Import it first in a test file that runs a worker.
 */
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';

Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} } },
});
