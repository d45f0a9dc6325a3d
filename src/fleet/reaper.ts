/**
 * Moves the activities of a dead worker to the living at once, instead of after their heartbeat timeout (minutes:
 * a session heartbeats rarely, heartbeats being billable). Every worker runs one reaper:
 *
 * - at start, a worker with a stable identity (TENANT_MIRROR_WORKER_ID) fails the activities its previous
 *   incarnation left started — a restart after SIGKILL or an OOM kill costs the restart, not the timeout;
 * - while running, it watches Temporal's worker heartbeats (ListWorkers, every 5 s, one call per worker, none per
 *   tenant). When a worker stops heartbeating, the fleet's leader (the smallest live identity) fails that
 *   worker's started activities by id; each is retried at once (its retry policy's first interval) on a live
 *   worker. A leader also sweeps every 10 minutes for anything a transition missed.
 *
 * Failing an attempt by id is safe even if the worker was only slow: its session can no longer heartbeat or
 * complete, and the mirror's fence (a newer session's epoch) stops it from writing.
 *
 * Without worker heartbeats on the server (they need frontend.WorkerHeartbeatsEnabled and ListWorkersEnabled),
 * only the start-up reclaim works, and a dead worker's sessions move after their heartbeat timeout.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { FailureType } from '../core/errors';
import type { Logger } from '../logging';
import { Liveness, WORKER_HEARTBEAT_MS, type WorkerSighting } from './liveness';
import type { WorkerIdentity } from './identity';

const { PendingActivityState, WorkerStatus } = temporal.api.enums.v1;
const SWEEP_EVERY_MS = 10 * 60_000;
/** An identity the server has never listed is judged dead only when its activity started this long ago. */
const UNSEEN_GRACE_MS = 2 * 60_000;
const DESCRIBE_CONCURRENCY = 16;

export interface ReaperOptions {
  client: Client;
  namespace: string;
  taskQueue: string;
  identity: WorkerIdentity;
  workflowType: string;
  logger: Logger;
  /** When this process started (wall clock): activities under our own stable identity started before it are orphans. */
  startedAt?: number;
}

interface Orphan {
  workflowId: string;
  runId: string;
  activityId: string;
  activityType: string;
  attempt: number;
  worker: string;
  cancelRequested: boolean;
}

export class Reaper {
  private readonly liveness = new Liveness();
  private readonly startedAt: number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private heartbeatsAvailable = true;
  private warnedUnavailable = false;
  private lastSweep = 0;
  /** Identities already swept since they died (swept again by the periodic sweep only). */
  private readonly reaped = new Set<string>();

  constructor(private readonly opts: ReaperOptions) {
    this.startedAt = opts.startedAt ?? Date.now();
    this.log = opts.logger.child({ component: 'reaper', worker: opts.identity.name });
  }

  /** Reclaims this identity's leftovers once, then watches the fleet until stop(). */
  start(): void {
    const tick = async (first: boolean): Promise<void> => {
      try {
        await this.tick(first);
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'reaper pass failed; trying again');
      }
      if (!this.stopped) this.timer = setTimeout(() => (this.running = tick(false)), this.heartbeatsAvailable ? WORKER_HEARTBEAT_MS : 60_000);
    };
    this.running = tick(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private async tick(first: boolean): Promise<void> {
    const now = performance.now();
    if (this.heartbeatsAvailable) await this.observe(now);
    const self = this.opts.identity.name;
    const leader = this.heartbeatsAvailable && this.liveness.leader(self, now) === self;
    const newlyDead = leader ? this.liveness.deadSeen(now).filter((id) => !this.reaped.has(id)) : [];
    const sweepDue = leader && Date.now() - this.lastSweep >= SWEEP_EVERY_MS;
    if (!(first && this.opts.identity.stable) && newlyDead.length === 0 && !sweepDue) return;
    this.lastSweep = Date.now();
    const orphans = await this.findOrphans((worker, startedAt) => this.isOrphan(worker, startedAt, leader, now));
    for (const id of newlyDead) this.reaped.add(id);
    for (const orphan of orphans) await this.reclaim(orphan);
  }

  private async observe(now: number): Promise<void> {
    let sightings: WorkerSighting[];
    try {
      sightings = await this.listWorkers();
    } catch (err) {
      this.heartbeatsAvailable = false;
      if (!this.warnedUnavailable) {
        this.warnedUnavailable = true;
        this.log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "Temporal's worker heartbeats are not available (enable frontend.WorkerHeartbeatsEnabled and frontend.ListWorkersEnabled): a dead worker's sessions move only after their heartbeat timeout",
        );
      }
      return;
    }
    if (!this.heartbeatsAvailable) this.log.info('worker heartbeats available again: watching the fleet');
    this.heartbeatsAvailable = true;
    this.liveness.observe(sightings, now);
    // An identity that heartbeats again (a restarted worker under the same name) may die again later.
    for (const id of this.liveness.alive(now)) this.reaped.delete(id);
  }

  private async listWorkers(): Promise<WorkerSighting[]> {
    const sightings: WorkerSighting[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await this.opts.client.workflowService.listWorkers({
        namespace: this.opts.namespace,
        pageSize: 1000,
        query: `TaskQueue = ${JSON.stringify(this.opts.taskQueue)}`,
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      for (const info of page.workersInfo ?? []) {
        const hb = info.workerHeartbeat;
        if (!hb?.workerInstanceKey || !hb.workerIdentity) continue;
        sightings.push({
          identity: hb.workerIdentity,
          instanceKey: hb.workerInstanceKey,
          heartbeatAt: optionalTsToMs(hb.heartbeatTime) ?? 0,
          stopped: hb.status === WorkerStatus.WORKER_STATUS_SHUTDOWN,
        });
      }
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    return sightings;
  }

  private isOrphan(worker: string, startedAt: number | undefined, leader: boolean, now: number): boolean {
    const self = this.opts.identity;
    if (worker === self.name) return self.stable && startedAt !== undefined && startedAt < this.startedAt;
    if (!leader || !this.liveness.isDead(worker, now)) return false;
    // Never listed at all: a worker that just started may not have sent its first heartbeat yet.
    return this.liveness.seen(worker) || (startedAt !== undefined && Date.now() - startedAt > UNSEEN_GRACE_MS);
  }

  /** Started activities of this task queue's tenant workflows that `orphaned` claims. */
  private async findOrphans(orphaned: (worker: string, startedAt: number | undefined) => boolean): Promise<Orphan[]> {
    const { client, workflowType, taskQueue } = this.opts;
    const found: Orphan[] = [];
    const pending: Promise<void>[] = [];
    const query = `WorkflowType = ${JSON.stringify(workflowType)} AND ExecutionStatus = "Running" AND TaskQueue = ${JSON.stringify(taskQueue)}`;
    const inspect = async (workflowId: string, runId: string): Promise<void> => {
      for (const orphan of await this.orphansOf(workflowId, runId, orphaned)) found.push(orphan);
    };
    for await (const wf of client.workflow.list({ query })) {
      pending.push(inspect(wf.workflowId, wf.runId));
      if (pending.length >= DESCRIBE_CONCURRENCY) await Promise.allSettled(pending.splice(0));
    }
    await Promise.allSettled(pending);
    return found;
  }

  private async orphansOf(workflowId: string, runId: string, orphaned: (worker: string, startedAt: number | undefined) => boolean): Promise<Orphan[]> {
    const description = await this.opts.client.workflow.getHandle(workflowId, runId).describe();
    const out: Orphan[] = [];
    for (const p of description.raw.pendingActivities ?? []) {
      const started = p.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;
      const cancelRequested = p.state === PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED;
      const worker = p.lastWorkerIdentity ?? '';
      if (!p.activityId || !worker || !(started || cancelRequested)) continue;
      if (!orphaned(worker, optionalTsToMs(p.lastStartedTime))) continue;
      out.push({
        workflowId,
        runId,
        activityId: p.activityId,
        activityType: p.activityType?.name ?? '?',
        attempt: p.attempt ?? 0,
        worker,
        cancelRequested,
      });
    }
    return out;
  }

  /** Ends the orphaned attempt, if it is still the one we judged (the server may have moved on meanwhile). */
  private async reclaim(o: Orphan): Promise<void> {
    const again = await this.opts.client.workflow.getHandle(o.workflowId, o.runId).describe();
    const now = (again.raw.pendingActivities ?? []).find((p) => p.activityId === o.activityId);
    if (!now || (now.attempt ?? 0) !== o.attempt || now.lastWorkerIdentity !== o.worker) return;
    const id = { workflowId: o.workflowId, runId: o.runId, activityId: o.activityId };
    const fields = { workflowId: o.workflowId, activity: o.activityType, attempt: o.attempt, deadWorker: o.worker };
    try {
      if (o.cancelRequested) {
        // The workflow already asked it to stop (a pause, a wipe): confirm the cancellation on its behalf.
        await this.opts.client.activity.reportCancellation(id);
      } else {
        const message = `the worker ${o.worker} running this attempt stopped: retried on a live worker`;
        await this.opts.client.activity.fail(id, ApplicationFailure.retryable(message, FailureType.WorkerLost));
      }
      this.log.warn(fields, 'reclaimed an activity of a stopped worker');
    } catch (err) {
      // Completed or retried meanwhile: nothing to reclaim.
      this.log.info({ ...fields, err: err instanceof Error ? err.message : String(err) }, 'activity no longer reclaimable');
    }
  }
}
