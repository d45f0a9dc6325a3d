/**
 * One durable workflow per tenant: the mirror's lifecycle as a state machine over one TenantState value.
 *
 *   bootstrapping ─► populating ─► mirroring ─┐
 *        ▲                                    │ (a table to repopulate, a new table, a restore, a time limit)
 *        └────────────────────────────────────┘
 *   paused (pause signal, or a restored source under policy "pause"), wiping (forceWipe, expiry),
 *   blocked (bad config or credentials: waits, does not hammer)
 *
 * The workflow decides; activities move rows. The steady state is one long-running sync-session activity, so an
 * idle tenant costs a handful of history events per session instead of ~11 per poll. The state (workflows/state.ts)
 * is carried whole across continue-as-new.
 */
import { allHandlersFinished, condition, continueAsNew, workflowInfo } from '@temporalio/workflow';
import { registerHandlers } from './messages';
import { Interrupter, nextPhase, pausedPhase, publishFailedTables, syncPhase, wipePhase } from './phases';
import { initialState, type TenantWorkflowInput } from './state';

export type { TenantWorkflowInput } from './state';

export async function tenantMirrorWorkflow(input: TenantWorkflowInput): Promise<void> {
  const state = initialState(input);
  const interrupter = new Interrupter(state);
  registerHandlers(state, () => interrupter.wake());
  while (!workflowInfo().continueAsNewSuggested) {
    state.wake = false;
    switch (nextPhase(state, Date.now())) {
      case 'wipe':
        await wipePhase(state);
        break;
      case 'paused':
        await pausedPhase(state);
        break;
      case 'sync':
        await syncPhase(state, interrupter);
    }
    publishFailedTables(state);
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof tenantMirrorWorkflow>({ tenantId: state.tenantId, state });
}
