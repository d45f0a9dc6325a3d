/**
 * Frugal heartbeats for a long-running activity. Every heartbeat that reaches the server is a billable action,
 * and a cancellation (pause, wipe, syncNow) only reaches an activity in a heartbeat's response. Beating every
 * second would cost ~3,600 actions an hour per idle tenant; instead the activity beats rarely (`everyMs`) and
 * looks every couple of seconds at its own workflow's description (a read, not an action) for a cancel request
 * against it, beating at once when it sees one so the cancellation is delivered.
 */
import { CancelledFailure, type Context } from '@temporalio/activity';
import { temporal } from '@temporalio/proto';

const CANCEL_REQUESTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED;

export interface CancelWatch {
  /** Whether the next `beat` will be sent (its details are worth bringing up to date). */
  due(): boolean;
  /** Records the latest details; sends them only if `everyMs` has passed since the last beat. */
  beat(details: unknown): void;
  /** Waits `ms`, looking out for a cancel request; throws CancelledFailure once the cancellation arrives. */
  sleep(ms: number): Promise<void>;
}

export function cancelWatch(ctx: Context, opts: { everyMs: number; lookEveryMs: number }): CancelWatch {
  let details: unknown = undefined;
  let lastBeat = 0;
  // Kept across sleeps: a poll interval shorter than the look interval must not postpone the look forever.
  let nextLook = Date.now() + opts.lookEveryMs;
  const send = (): void => {
    lastBeat = Date.now();
    ctx.heartbeat(details);
  };
  const throwIfCancelled = (): void => {
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled by the workflow');
  };

  /** Whether the workflow asked this activity to stop (or no longer waits for it). */
  async function cancelRequested(): Promise<boolean> {
    try {
      const { workflowExecution, activityId } = ctx.info;
      if (!workflowExecution) return false;
      const description = await ctx.client.workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId).describe();
      const mine = (description.raw.pendingActivities ?? []).find((p) => p.activityId === activityId);
      // A workflow that ended (terminated, say) no longer wants this activity either: the beat will say so.
      return description.status.name !== 'RUNNING' || mine === undefined || mine.state === CANCEL_REQUESTED;
    } catch {
      return false; // the server is briefly away: the next look, or the next regular beat, will tell
    }
  }

  const due = (): boolean => Date.now() - lastBeat >= opts.everyMs;

  return {
    due,
    beat(next) {
      details = next;
      if (due()) send();
    },
    async sleep(ms) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        throwIfCancelled();
        await ctx.sleep(Math.max(1, Math.min(250, until - Date.now())));
        if (due()) send();
        if (Date.now() >= nextLook) {
          nextLook = Date.now() + opts.lookEveryMs;
          if (await cancelRequested()) {
            send();
            // The heartbeat's response carries the cancellation; give it a moment to arrive.
            await Promise.race([ctx.sleep(5_000), new Promise((r) => ctx.cancellationSignal.addEventListener('abort', r, { once: true }))]);
          }
        }
      }
      throwIfCancelled();
    },
  };
}
