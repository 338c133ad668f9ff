// MessagingPort over the messaging module (ReplayMigration per migration, one shared broker
// pool with reconnects). The drain decision is the module's: Replaying moves on when
// decideCutover says "handover"; cutover() then drains the rest loss-free.
import { BrokerPool, ReplayMigration, decideCutover } from "../../messaging/index.ts";
import type { Logger } from "../../common/logger.ts";
import type { CutoverResult, MessagingPort, ReplayProgress, ReplayRef } from "../ports.ts";

/** A migration to reconcile now: its target reported replay progress. */
export type ProgressListener = (migration: { namespace: string; name: string }) => void;

export class BrokerMessaging implements MessagingPort {
  readonly pool: BrokerPool;
  private readonly migrations = new Map<string, ReplayMigration>();
  private readonly log: Logger | undefined;
  private listener: ProgressListener | undefined;

  constructor(log?: Logger) {
    this.log = log;
    this.pool = new BrokerPool(log ? { logger: log } : {});
  }

  /**
   * Replay progress is pushed, not polled: each PROGRESS report of a target (the SDK sends one
   * when it catches up with the replay queue, and a heartbeat) calls `listener` with the
   * migration, which the controller enqueues; Replaying then samples the queue depth once.
   */
  onProgress(listener: ProgressListener): void {
    this.listener = listener;
  }

  private of(ref: ReplayRef): ReplayMigration {
    let m = this.migrations.get(ref.migrationUid);
    if (!m) {
      m = new ReplayMigration(this.pool, {
        uid: ref.migrationUid,
        topology: {
          brokerUrl: ref.brokerUrl,
          exchange: ref.config.exchangeName,
          primaryQueue: ref.config.queueName,
          routingKey: ref.config.routingKey ?? "",
        },
        ...(this.log ? { logger: this.log } : {}),
        onStatus: (status) => {
          if (status.type === "PROGRESS") this.listener?.({ namespace: ref.namespace, name: ref.migration });
        },
      });
      this.migrations.set(ref.migrationUid, m);
    }
    return m;
  }

  async prepareReplay(ref: ReplayRef) {
    const m = this.of(ref);
    await m.setup();
    // Before the checkpoint: the source must have applied everything queued before the
    // replay queue existed, or a message it consumes after the checkpoint reaches neither
    // the checkpointed state nor the replay queue (see src/messaging/migration.ts).
    await m.fenceSource();
    return { replayQueue: m.queues.replayQueue };
  }

  async startReplay(ref: ReplayRef, targetPod: string) {
    const answer = await this.of(ref).startReplay(targetPod);
    return answer.restoredFrom ? { restoredFrom: answer.restoredFrom } : {};
  }

  async progress(ref: ReplayRef, _replayQueue: string, targetPod: string): Promise<ReplayProgress> {
    const status = await this.of(ref).drainStatus(targetPod);
    const decision = decideCutover(status, { replayStartedAt: 0, cutoffAfterMs: Infinity }, Date.now());
    return {
      readyForCutover: decision.action === "handover",
      messagesReplayed: status.replayed,
      messagesRemaining: status.depth,
    };
  }

  async cutover(
    ref: ReplayRef,
    args: { sourcePod: string; targetPod: string; replayQueue: string; cutoff: boolean },
  ): Promise<CutoverResult> {
    const report = await this.of(ref).cutover({
      sourcePod: args.sourcePod,
      targetPod: args.targetPod,
      cutoff: args.cutoff,
    });
    return { messagesReplayed: report.replayed, messagesRemaining: report.messagesLeft };
  }

  async rollback(ref: ReplayRef, args: { sourcePod: string; replayQueue?: string }) {
    const m = this.of(ref);
    // The source may never have been told to stop; a missing answer must not block the cleanup.
    await m.rollback(args.sourcePod).catch((err: unknown) => this.log?.debug({ err }, "resume source"));
    await m.cleanup();
    this.migrations.delete(ref.migrationUid);
  }

  async cleanup(ref: ReplayRef) {
    await this.of(ref).cleanup();
    this.migrations.delete(ref.migrationUid);
  }

  async close(): Promise<void> {
    await Promise.all([...this.migrations.values()].map((m) => m.close()));
    await this.pool.close();
  }
}
