/**
 * Keeps the Temporal worker's own log (every retried activity failure, worker state changes) out of the test
 * output; errors still show. Import it first in a test file that runs a worker.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';

Runtime.install({ logger: new DefaultLogger('ERROR') });
