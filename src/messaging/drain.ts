// Drain status and the cutover decision. Pure functions: the phase handler samples, these decide.
import type { StatusMessage } from "../protocol/replay.ts";

export interface DrainStatus {
  replayQueue: string;
  /** Messages ready in the replay queue (broker-reported). */
  depth: number;
  /** Consumers attached to the replay queue (1 while the target replays). */
  consumers: number;
  /** Deliveries the target holds unacknowledged (consumer-reported: AMQP has no such count). */
  unacked: number | undefined;
  replayed: number;
  duplicatesSkipped: number;
  /** Messages the target takes off the replay queue per second (applied + skipped). */
  replayRate: number;
  /** The target confirmed (REPLAY_ENDED) that it emptied the replay queue after it was unbound. */
  confirmed: boolean;
  /** depth 0, nothing unacknowledged, and the consumer confirmed: the only state that counts as drained. */
  drained: boolean;
}

/** Replay rate from the target's counter reports: (replayed + skipped) per second over the window. */
export function replayRate(progress: StatusMessage[], windowMs = 5000): number {
  if (progress.length < 2) return 0;
  const last = progress[progress.length - 1]!;
  const first = progress.find((p) => last.at - p.at <= windowMs) ?? progress[0]!;
  const dt = (last.at - first.at) / 1000;
  if (dt <= 0) return 0;
  const taken = (s: StatusMessage) => s.counters.replayed + s.counters.duplicatesSkipped;
  return Math.max(0, (taken(last) - taken(first)) / dt);
}

export function isDrained(s: Pick<DrainStatus, "depth" | "unacked" | "confirmed">): boolean {
  return s.depth === 0 && s.unacked === 0 && s.confirmed;
}

export interface CutoverPolicy {
  /** When the replay started (ms since epoch). */
  replayStartedAt: number;
  /** Replay budget; past it the cutoff fires (the prior implementation used 120 s). */
  cutoffAfterMs: number;
  /** Hand over once the backlog takes at most this long to replay at the measured rate. */
  handoverBacklogMs?: number;
  /** ...or once at most this many messages are left, whatever the rate. */
  handoverMaxDepth?: number;
}

export type CutoverDecision =
  | { action: "wait"; depth: number; replayRate: number; reason: string }
  | { action: "handover"; depth: number; replayRate: number; reason: string }
  | { action: "cutoff"; depth: number; replayRate: number; messagesLeft: number; reason: string };

/**
 * When to start the cutover. "handover" means the backlog is small enough that the final,
 * complete drain is short (the source stops consuming during that drain). "cutoff" means the
 * budget is spent: hand over anyway and abandon what is left in the replay queue, reported.
 */
export function decideCutover(
  status: Pick<DrainStatus, "depth" | "replayRate">,
  policy: CutoverPolicy,
  now: number,
): CutoverDecision {
  const { depth, replayRate: rate } = status;
  const maxDepth = Math.max(
    policy.handoverMaxDepth ?? 20,
    Math.ceil((rate * (policy.handoverBacklogMs ?? 1000)) / 1000),
  );
  if (depth <= maxDepth)
    return { action: "handover", depth, replayRate: rate, reason: `backlog ${depth} <= ${maxDepth}` };
  if (now - policy.replayStartedAt >= policy.cutoffAfterMs)
    return {
      action: "cutoff",
      depth,
      replayRate: rate,
      messagesLeft: depth,
      reason: `replay budget of ${policy.cutoffAfterMs} ms spent with ${depth} messages left`,
    };
  return { action: "wait", depth, replayRate: rate, reason: `backlog ${depth} > ${maxDepth}` };
}
