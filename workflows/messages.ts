/**
 * The workflow's message handlers. Each only records the operator's intent on the tenant's state and wakes the
 * workflow (`wake` cancels the activity now running); the phases act on the intent. A message the workflow
 * cannot act on is recorded in status (`notices`) and the worker log, never silently dropped.
 */
import { log, patched, setDefaultSignalHandler, setHandler } from '@temporalio/workflow';
import {
  forceWipeSignal,
  forceWipeUpdate,
  pauseSignal,
  pauseTablesUpdate,
  resumeSignal,
  resumeTablesUpdate,
  SIGNAL_NAMES,
  statusQuery,
  syncNowSignal,
  type ForceWipeAck,
  type TablesAck,
} from '../contract/messages';
import {
  addNotice,
  requestPause,
  requestResume,
  requestTablePause,
  requestTableResume,
  requestWipe,
  statusOf,
  tablesRequestProblem,
  wipeRequestProblem,
  type TenantState,
} from './state';

/** Patch id: the forceWipe signal and unknown signals are handled (before, such signals waited unhandled in history). */
const SIGNAL_HANDLERS = 'force-wipe-signal';

export function registerHandlers(s: TenantState, wake: () => void): void {
  setHandler(statusQuery, () => statusOf(s));
  setHandler(pauseSignal, (why) => {
    requestPause(s, why);
    wake();
  });
  setHandler(resumeSignal, () => {
    requestResume(s);
    wake();
  });
  setHandler(syncNowSignal, wake);
  setHandler(
    forceWipeUpdate,
    (request): ForceWipeAck => {
      const ack: ForceWipeAck = { accepted: true, tables: requestWipe(s, request?.tables), state: s.published ?? 'bootstrapping' };
      wake();
      return ack;
    },
    {
      validator: (request) => {
        const problem = wipeRequestProblem(s, request?.tables);
        if (problem) throw new Error(`forceWipe: ${problem}`);
      },
    },
  );
  // Per-table control: updates, so that a typo in a table name is refused to the caller instead of recorded.
  setHandler(
    pauseTablesUpdate,
    (request): TablesAck => {
      requestTablePause(s, request.tables, request.reason);
      wake();
      return { accepted: true, tables: request.tables };
    },
    { validator: (request) => rejectTables('pauseTables', tablesRequestProblem(s, request?.tables, false)) },
  );
  setHandler(
    resumeTablesUpdate,
    (request): TablesAck => {
      requestTableResume(s, request.tables);
      wake();
      return { accepted: true, tables: request.tables };
    },
    { validator: (request) => rejectTables('resumeTables', tablesRequestProblem(s, request?.tables, true)) },
  );
  setHandler(forceWipeSignal, (request) => {
    if (!patched(SIGNAL_HANDLERS)) return;
    const problem = wipeRequestProblem(s, request?.tables);
    if (problem) {
      ignored(s, `forceWipe signal ignored: ${problem}`);
      return;
    }
    requestWipe(s, request?.tables);
    wake();
  });
  setDefaultSignalHandler((name) => {
    ignored(s, `signal ${JSON.stringify(name)} ignored: the workflow has no such signal (it knows ${SIGNAL_NAMES.join(', ')})`);
  });
}

function rejectTables(update: string, problem: string | null): void {
  if (problem) throw new Error(`${update}: ${problem}`);
}

function ignored(s: TenantState, text: string): void {
  addNotice(s, text, Date.now());
  log.warn(text, { tenantId: s.tenantId });
}
