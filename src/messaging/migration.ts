// The replay protocol of one migration, as the controller's phase handlers drive it.
//
// Order of calls (each is idempotent and may be repeated after a controller restart):
//   setup()            before the checkpoint: replay + status queues, replay queue bound
//   fenceSource()      before the checkpoint: the source consumed everything queued before setup
//   -- checkpoint, transfer, restore the target (it waits for START_REPLAY) --
//   startReplay()      the target consumes the replay queue
//   drainStatus()      on each PROGRESS report (onStatus); feed it to decideCutover() until
//                      "handover" or "cutoff"
//   cutover()          stop source, unbind, final drain (or cutoff), target on the primary queue
//   cleanup()          delete replay + status queues; also after failure/cancel (cleanupMigration)
// On abort before cutover: rollback() (source consumes again), then cleanup().
//
// Why the result loses no message (when the cutoff does not fire):
//  Let B be the instant the replay queue R is bound, C the checkpoint. Every message m is
//  published either before B or after it.
//  (1) Before B: m is only in the primary queue P. The FENCE is queued in P after B, so when
//      the source answers FENCE_PASSED it has applied m, and C comes after that: m is in the
//      checkpointed state (its id in the SDK's dedup window).
//  (2) After B: m is in both P and R (fanout). Either m is still in P when the source stops
//      consuming, and then it stays there until the target consumes P, or the source took m,
//      and then its copy in R is the only way m reaches the target.
//  cutover() therefore (a) stops the source and waits for its STOPPED, sent only after every
//  delivery it held was settled: from then on nothing leaves P except to the target; (b) unbinds
//  R: R now holds a closed set, and anything newer is in P; (c) tells the target END_REPLAY, on
//  which it cancels its R consumer, applies everything delivered, and takes R with basic.get
//  until it is empty. Empty is final because R is closed, so every copy in R of a message the
//  source took has reached the target; only then does the target consume P. (d) Overlap (m
//  applied from R and still in P, or applied before C and replayed from R) is skipped by the
//  dedup window, which travels inside the checkpoint. Nothing is deleted before the target's
//  confirmation, and the drain is judged by: depth 0, unacked 0, and that confirmation.
//  With the cutoff, step (c) skips the basic.get loop; the messages still in R are counted
//  exactly (R is closed and has no consumer) and reported as messagesLeft. Those among them the
//  source never took are still in P and reach the target anyway: loss <= messagesLeft.
import { Ms2mError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import { controlQueueName } from "../protocol/replay.ts";
import type { StatusMessage } from "../protocol/replay.ts";
import type { BrokerPool } from "./broker-pool.ts";
import { sendControl, sendFence } from "./control.ts";
import { isDrained, replayRate, type DrainStatus } from "./drain.ts";
import { StatusInbox } from "./status-inbox.ts";
import {
  cleanupMigration,
  migrationQueues,
  queueDepth,
  replayTopologySchema,
  setupReplay,
  unbindReplay,
  type CleanupResult,
  type ReplayTopology,
  type ReplayTopologyInput,
  type SetupResult,
} from "./topology.ts";

export interface ReplayMigrationOptions {
  /** The migration's metadata.uid: names every broker object it creates. */
  uid: string;
  topology: ReplayTopologyInput;
  /** How long to wait for a pod's answer to one control message (default 30 s). */
  answerTimeoutMs?: number;
  logger?: Logger;
  /** Every status message as it arrives (e.g. to reconcile the migration on a PROGRESS report). */
  onStatus?: (status: StatusMessage) => void;
}

export interface CutoverRequest {
  /** Source pod; omit (or set sourceGone) when it no longer runs, e.g. it was deleted. */
  sourcePod?: string;
  sourceGone?: boolean;
  targetPod: string;
  /** The replay budget is spent: abandon what is left in the replay queue (reported). */
  cutoff?: boolean;
}

export interface CutoverReport {
  cutoffFired: boolean;
  /** depth 0, unacked 0 and the target confirmed an empty replay queue. */
  drained: boolean;
  /** Messages left in the (closed) replay queue that the target did not take. */
  messagesLeft: number;
  /** Of those, at least this many were still in the primary queue (the target gets them there). */
  stillInPrimaryAtLeast: number;
  replayed: number;
  duplicatesSkipped: number;
  replayRate: number;
  /** Time from STOP_CONSUMING to the target's confirmation: when no pod consumed the primary queue. */
  handoverMs: number;
}

export class ReplayMigration {
  readonly uid: string;
  readonly topology: ReplayTopology;
  readonly #pool: BrokerPool;
  readonly #inbox: StatusInbox;
  readonly #answerTimeoutMs: number;
  readonly #log: Logger | undefined;

  constructor(pool: BrokerPool, options: ReplayMigrationOptions) {
    this.uid = options.uid;
    this.topology = replayTopologySchema.parse(options.topology);
    this.#pool = pool;
    this.#inbox = new StatusInbox(pool, this.topology.brokerUrl, this.uid, options.onStatus);
    this.#answerTimeoutMs = options.answerTimeoutMs ?? 30_000;
    this.#log = options.logger?.child({ migration: this.uid });
  }

  get queues() {
    return migrationQueues(this.uid);
  }

  /** Before the checkpoint. */
  setup(): Promise<SetupResult> {
    return setupReplay(this.#pool, this.uid, this.topology);
  }

  /** Before the checkpoint, after setup(): waits until the source consumed all it had queued before. */
  async fenceSource(timeoutMs = this.#answerTimeoutMs): Promise<StatusMessage> {
    const id = await sendFence(this.#pool, this.topology.brokerUrl, this.uid, this.topology.primaryQueue);
    return this.#inbox.await(undefined, "FENCE_PASSED", id, timeoutMs);
  }

  /** After the target is running (or before: the message waits in its control queue). */
  async startReplay(targetPod: string, timeoutMs = this.#answerTimeoutMs): Promise<StatusMessage> {
    const id = await this.#send(targetPod, { type: "START_REPLAY", replayQueue: this.queues.replayQueue });
    return this.#inbox.await(targetPod, "REPLAY_STARTED", id, timeoutMs);
  }

  /** Depth and rate of the replay; `drained` only after cutover() got the target's confirmation. */
  async drainStatus(targetPod: string): Promise<DrainStatus> {
    await this.#inbox.poll();
    const depth = await queueDepth(this.#pool, this.topology.brokerUrl, this.queues.replayQueue);
    if (!depth) throw new Ms2mError("NotFound", `replay queue ${this.queues.replayQueue} does not exist`);
    const progress = this.#inbox.progress(targetPod);
    const last = progress[progress.length - 1];
    const ended = this.#inbox.latest(targetPod, "REPLAY_ENDED");
    const confirmed = ended?.drainedToEmpty === true;
    const status = {
      replayQueue: this.queues.replayQueue,
      depth: depth.ready,
      consumers: depth.consumers,
      unacked: last?.counters.unacked,
      replayed: last?.counters.replayed ?? 0,
      duplicatesSkipped: last?.counters.duplicatesSkipped ?? 0,
      replayRate: replayRate(progress),
      confirmed,
    };
    return { ...status, drained: isDrained(status) };
  }

  /** The handover; see the argument at the top of this file for why the order is what it is. */
  async cutover(request: CutoverRequest): Promise<CutoverReport> {
    const cutoff = request.cutoff ?? false;
    const started = Date.now();
    const rate = (await this.drainStatus(request.targetPod).catch(() => undefined))?.replayRate ?? 0;
    // (a) The source stops taking messages from the primary queue.
    if (request.sourcePod && !request.sourceGone) {
      const id = await this.#send(request.sourcePod, { type: "STOP_CONSUMING" });
      await this.#inbox.await(request.sourcePod, "STOPPED", id, this.#answerTimeoutMs);
    }
    // What the primary queue holds now was not taken by the source: all of it reaches the target.
    const primary = await queueDepth(this.#pool, this.topology.brokerUrl, this.topology.primaryQueue);
    // (b) Close the replay queue.
    await unbindReplay(this.#pool, this.uid, this.topology);
    // (c) Final drain by the target (or abandon on cutoff), then it consumes the primary queue.
    const id = await this.#send(request.targetPod, {
      type: "END_REPLAY",
      replayQueue: this.queues.replayQueue,
      cutoff,
    });
    const ended = await this.#inbox.await(request.targetPod, "REPLAY_ENDED", id, this.#answerTimeoutMs);
    const left = await queueDepth(this.#pool, this.topology.brokerUrl, this.queues.replayQueue);
    const messagesLeft = left?.ready ?? 0;
    const report: CutoverReport = {
      cutoffFired: cutoff,
      drained: isDrained({
        depth: messagesLeft,
        unacked: ended.counters.unacked,
        confirmed: ended.drainedToEmpty === true,
      }),
      messagesLeft,
      stillInPrimaryAtLeast: Math.min(messagesLeft, primary?.ready ?? 0),
      replayed: ended.counters.replayed,
      duplicatesSkipped: ended.counters.duplicatesSkipped,
      replayRate: rate,
      handoverMs: Date.now() - started,
    };
    this.#log?.info({ ...report }, cutoff ? "cutover with cutoff" : "cutover complete");
    if (!cutoff && !report.drained)
      throw new Ms2mError("InternalError", `replay queue not drained at cutover: ${messagesLeft} left`);
    return report;
  }

  /** Abort before cutover: the source takes messages from the primary queue again. */
  async rollback(sourcePod: string): Promise<void> {
    const id = await this.#send(sourcePod, { type: "RESUME_CONSUMING" });
    await this.#inbox.await(sourcePod, "RESUMED", id, this.#answerTimeoutMs);
  }

  async cleanup(): Promise<CleanupResult> {
    await this.#inbox.close();
    return cleanupMigration(this.#pool, this.topology.brokerUrl, this.uid);
  }

  /** Stops listening for status messages (this process forgets the migration; queues stay). */
  close(): Promise<void> {
    return this.#inbox.close();
  }

  #send(pod: string, request: Parameters<typeof sendControl>[4]): Promise<string> {
    this.#log?.debug({ pod, queue: controlQueueName(pod), type: request.type }, "sending control message");
    return sendControl(this.#pool, this.topology.brokerUrl, this.uid, pod, request);
  }
}
