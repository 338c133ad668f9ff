// The replay protocol on the wire, between the ms2m controller (src/messaging) and consumers
// built on the SDK (src/sdk): queue names, control and status messages. Its own library, so a
// workload depends on nothing controller-side and the controller on no SDK internals.
import { z } from "zod";

/** Queue a pod listens on for control messages. */
export const controlQueueName = (podName: string): string => `ms2m.control.${podName}`;
/** Queue that receives, during one migration, every message published to the workload's exchange. */
export const replayQueueName = (migrationUid: string): string => `ms2m.replay.${migrationUid}`;
/** Queue the SDK replies on during one migration; named in every control message (`replyTo`). */
export const statusQueueName = (migrationUid: string): string => `ms2m.status.${migrationUid}`;

/** Header that marks a protocol message travelling through the workload's own primary queue. */
export const FENCE_HEADER = "x-ms2m-fence";

/**
 * Arguments of the queues the protocol declares. Both sides declare control queues, so the
 * arguments must be identical (a mismatch is a 406 PRECONDITION_FAILED channel error).
 * `x-expires` lets the broker remove a queue nobody uses any more (a pod that went away).
 */
export const CONTROL_QUEUE_ARGS = { "x-expires": 24 * 3600_000 } as const;

const base = {
  migration: z.string().min(1),
  /** Status queue the SDK replies on. */
  replyTo: z.string().min(1),
};

export const controlMessageSchema = z.discriminatedUnion("type", [
  /** To the source, through its primary queue: replies once everything queued before it was consumed. */
  z.object({ type: z.literal("FENCE"), ...base }),
  /** To the target: consume the replay queue instead of the primary queue. */
  z.object({ type: z.literal("START_REPLAY"), ...base, replayQueue: z.string().min(1) }),
  /** To the source: stop taking messages from the primary queue (and settle what it holds). */
  z.object({ type: z.literal("STOP_CONSUMING"), ...base }),
  /** To the source, on rollback: take messages from the primary queue again. */
  z.object({ type: z.literal("RESUME_CONSUMING"), ...base }),
  /**
   * To the target: leave the replay queue and consume the primary queue. Without `cutoff` the
   * SDK first empties the replay queue (the controller unbinds it before, so "empty" is final).
   */
  z.object({
    type: z.literal("END_REPLAY"),
    ...base,
    replayQueue: z.string().min(1),
    cutoff: z.boolean().default(false),
  }),
]);
export type ControlMessage = z.infer<typeof controlMessageSchema>;
export type ControlType = ControlMessage["type"];

/** Counters the SDK attaches to every status message. */
export const consumerCountersSchema = z.object({
  processed: z.number().int().nonnegative(),
  replayed: z.number().int().nonnegative(),
  duplicatesSkipped: z.number().int().nonnegative(),
  /** Deliveries the SDK holds and has not acknowledged yet. */
  unacked: z.number().int().nonnegative(),
});
export type ConsumerCounters = z.infer<typeof consumerCountersSchema>;

export const statusMessageSchema = z.object({
  type: z.enum(["FENCE_PASSED", "REPLAY_STARTED", "PROGRESS", "STOPPED", "RESUMED", "REPLAY_ENDED"]),
  migration: z.string(),
  pod: z.string(),
  /** messageId of the control message answered (absent for PROGRESS). */
  inReplyTo: z.string().optional(),
  at: z.number(),
  counters: consumerCountersSchema,
  /** REPLAY_ENDED: whether the SDK emptied the replay queue (false when the cutoff fired). */
  drainedToEmpty: z.boolean().optional(),
  /**
   * The pod this process ran in before it was restored into this one (the migration's source).
   * Absent: the process started fresh here. The controller verifies a restore with it: a target
   * that answers START_REPLAY without it is a cold start, not the checkpointed process.
   */
  restoredFrom: z.object({ pod: z.string(), uid: z.string().optional() }).optional(),
});
export type StatusMessage = z.infer<typeof statusMessageSchema>;
export type StatusType = StatusMessage["type"];

/** Deterministic control message id, so a resend is recognisable by the SDK. */
export const controlMessageId = (migration: string, type: ControlType): string => `${migration}:${type}`;
