/**
 * Frugal heartbeats for a long-running activity. Every heartbeat that reaches the server is a billable action,
 * and a cancellation (pause, wipe, syncNow) only reaches an activity in a heartbeat's response. So the activity
 * beats rarely (`everyMs`), and instead follows its own workflow's history with a long poll: the server holds
 * each request until a new event arrives or 20 s pass, and the watch waits `gapMs` between two requests. When the
 * history records a cancel request for this activity (or the workflow closed), the watch beats at once and the
 * response carries the cancellation. Cost for an idle tenant: one frontend call per 20 s + gap (about 144 an
 * hour), none of them billable, instead of a description read every 2 s (1,800 an hour).
 */
import { CancelledFailure, type Context } from '@temporalio/activity';
import { isGrpcServiceError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const { EventType } = temporal.api.enums.v1;
const CLOSED = new Set<number>([
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
]);
/** gRPC NOT_FOUND: the workflow run is gone (retention, or a reset). */
const NOT_FOUND = 5;

export interface CancelWatch {
  /** Whether the next `beat` will be sent (its details are worth bringing up to date). */
  due(): boolean;
  /** Records the latest details; sends them only if `everyMs` has passed since the last beat. */
  beat(details: unknown): void;
  /** Waits `ms`; throws CancelledFailure once the cancellation arrives; returns early when `until` aborts. */
  sleep(ms: number, until?: AbortSignal): Promise<void>;
  /** Stops following the history (the activity is ending). */
  close(): void;
}

export function cancelWatch(ctx: Context, opts: { everyMs: number; gapMs: number }): CancelWatch {
  let details: unknown = undefined;
  let lastBeat = Date.now();
  const stop = new AbortController();
  const send = (): void => {
    lastBeat = Date.now();
    ctx.heartbeat(details);
  };
  const throwIfCancelled = (): void => {
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled by the workflow');
  };
  const due = (): boolean => Date.now() - lastBeat >= opts.everyMs;

  void follow(ctx, stop.signal, opts.gapMs, () => {
    // The server has recorded the request; the heartbeat's response delivers it to ctx.cancellationSignal.
    send();
  });

  return {
    due,
    beat(next) {
      details = next;
      if (due()) send();
    },
    async sleep(ms, until) {
      const end = Date.now() + ms;
      while (Date.now() < end && !until?.aborted) {
        throwIfCancelled();
        await ctx.sleep(Math.max(1, Math.min(250, end - Date.now())));
        if (due()) send();
      }
      throwIfCancelled();
    },
    close() {
      stop.abort();
    },
  };
}

/**
 * Long-polls the workflow's history for this activity's cancel request (or the workflow's end) and calls
 * `onWanted` once it appears. Events before the activity was scheduled are history: only a request naming this
 * activity's scheduled event counts.
 */
async function follow(ctx: Context, stop: AbortSignal, gapMs: number, onWanted: () => void): Promise<void> {
  const { workflowExecution, workflowNamespace, activityId } = ctx.info;
  if (!workflowExecution) return;
  const service = ctx.client.workflowService;
  let scheduledEventId: string | null = null;
  let nextPageToken: Uint8Array | undefined;
  while (!stop.aborted) {
    let page;
    try {
      page = await ctx.client.withAbortSignal(stop, () =>
        service.getWorkflowExecutionHistory({
          namespace: workflowNamespace,
          execution: { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId },
          waitNewEvent: true,
          skipArchival: true,
          ...(nextPageToken ? { nextPageToken } : {}),
        }),
      );
    } catch (err) {
      if (stop.aborted) return;
      if (isGrpcServiceError(err) && err.code === NOT_FOUND) return onWanted();
      await pause(gapMs, stop); // the server is briefly away: the next poll, or the next regular beat, will tell
      continue;
    }
    for (const event of page.history?.events ?? []) {
      const id = event.eventId?.toString() ?? '';
      if (event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && event.activityTaskScheduledEventAttributes?.activityId === activityId) {
        scheduledEventId = id;
      }
      const cancelFor = event.activityTaskCancelRequestedEventAttributes?.scheduledEventId?.toString();
      const cancelled = event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED && cancelFor === scheduledEventId;
      if (cancelled || CLOSED.has(event.eventType ?? 0)) return onWanted();
    }
    // A running workflow's history always has a next page to wait on; none means it closed.
    if (!page.nextPageToken?.length) return onWanted();
    const more = nextPageToken === undefined || (page.history?.events?.length ?? 0) > 0;
    nextPageToken = page.nextPageToken;
    // Catching up on a long history goes on at once; waiting for new events leaves a gap between two polls.
    if (!more) await pause(gapMs, stop);
  }
}

function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    }
    stop.addEventListener('abort', done, { once: true });
  });
}
