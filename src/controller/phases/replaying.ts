// Replaying: the target consumes the replay queue until what is left is small enough for the
// cutover's final, complete drain (messaging module: decideCutover) or the cutoff fires. The queue
// depth cannot be watched; the target's PROGRESS reports (pushed through the broker when it
// catches up, and as a heartbeat) bring the migration back here, and each sample of the depth is
// one broker round trip. A long re-check covers a report that never comes.
import { next, wait, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { uidOf } from "../names.ts";
import { isPodReady, podFailure } from "../pods.ts";
import { isOurs } from "../podspec.ts";
import { getCondition, iso, setCondition, timingOf } from "../status.ts";
import { pastNoReturn } from "../point-of-no-return.ts";
import { replayRef } from "./shared.ts";

export async function replaying(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const ref = await replayRef(ctx);
  const replayQueue = s.replay?.replayQueue;
  if (!ref || !replayQueue) {
    await ctx.advance(undefined, "nothing to replay");
    return next();
  }
  const target = await ctx.deps.cluster.getPod(ctx.namespace, s.targetPod ?? "");
  if (!target || !isOurs(target, uidOf(ctx.m)) || target.metadata?.deletionTimestamp) {
    return fail("TargetPodLost", `target pod ${s.targetPod} was deleted during replay`);
  }
  const failure = podFailure(target);
  if (failure) return fail("TargetPodFailed", `target pod ${s.targetPod}: ${failure}`);
  if (!isPodReady(target)) {
    // Past the point of no return the target is the only way forward: give it until the deadline.
    // Its readiness is a watch event.
    if (pastNoReturn(s)) return wait(ctx.remainingMs());
    return fail("TargetPodNotReady", `target pod ${s.targetPod} stopped being ready`);
  }

  const sentKey = `${uidOf(ctx.m)}/start-replay`;
  if (!s.replay?.startRequestedAt || !ctx.deps.sent.has(sentKey)) {
    if (!s.replay?.startRequestedAt) {
      const now = ctx.now;
      await ctx.update((m) => {
        m.status!.replay = { ...m.status!.replay, startRequestedAt: iso(now) };
      });
    }
    // Idempotent on the consumer side; sent again once after a controller restart.
    const answer = await ctx.deps.messaging.startReplay(ref, target.metadata?.name ?? "", replayQueue);
    ctx.deps.sent.add(sentKey);
    const cold = await verifyRestore(ctx, target.metadata?.name ?? "", answer.restoredFrom);
    if (cold) return cold;
  }

  const progress = await ctx.deps.messaging.progress(ref, replayQueue, target.metadata?.name ?? "");
  const startedAt = timingOf(ctx.m.status, "Replaying")?.startTime;
  const elapsed = startedAt ? ctx.now - Date.parse(startedAt) : 0;
  const cutoffMs = ctx.m.spec.replayCutoffSeconds * 1000;
  if (progress.readyForCutover || elapsed >= cutoffMs) {
    const cutoffReached = !progress.readyForCutover;
    ctx.deps.sent.delete(sentKey);
    await ctx.advance(
      (m) => {
        m.status!.replay = {
          ...m.status!.replay,
          messagesReplayed: progress.messagesReplayed,
          messagesRemaining: cutoffReached ? progress.messagesRemaining : 0,
          cutoffReached,
        };
      },
      cutoffReached
        ? `replay cutoff after ${ctx.m.spec.replayCutoffSeconds}s, ${progress.messagesRemaining} messages left`
        : `replay drained (${progress.messagesReplayed} messages)`,
    );
    return next();
  }
  return wait(Math.min(ctx.deps.settings.replayRecheckMs, cutoffMs - elapsed));
}

export const CONDITION_RESTORE_VERIFIED = "RestoreVerified";

/**
 * A migration completes only with the checkpointed process in the target: its SDK names the pod
 * it was restored from. A target that started fresh (the runtime fell back to a cold start) is
 * rolled back, or kept under spec.onRestoreFailure: ColdStart (its replay then holds every message
 * since the checkpoint; the state from before it is lost). Returns the failure, if any.
 */
async function verifyRestore(
  ctx: PhaseContext,
  targetPod: string,
  restoredFrom: { pod: string; uid?: string } | undefined,
): Promise<Outcome | undefined> {
  const s = ctx.m.status ?? {};
  const source = ctx.m.spec.sourcePod;
  const restored =
    restoredFrom !== undefined &&
    (restoredFrom.uid && s.sourcePodUID ? restoredFrom.uid === s.sourcePodUID : restoredFrom.pod === source);
  const what = restoredFrom
    ? `its process was restored from pod ${restoredFrom.pod}${restoredFrom.uid ? ` (uid ${restoredFrom.uid})` : ""}, not from the source ${source}${s.sourcePodUID ? ` (uid ${s.sourcePodUID})` : ""}`
    : "its process started fresh instead of being restored from the checkpoint (its SDK reports no restore)";
  if (restored) {
    if (getCondition(s, CONDITION_RESTORE_VERIFIED)?.status !== "True") {
      ctx.defer((m) =>
        setCondition(m, ctx.now, {
          type: CONDITION_RESTORE_VERIFIED,
          status: "True",
          reason: "Restored",
          message: `target pod ${targetPod} runs the checkpointed process of ${restoredFrom.pod}`,
        }),
      );
    }
    return undefined;
  }
  if (ctx.m.spec.onRestoreFailure !== "ColdStart") {
    return fail(
      "RestoreNotVerified",
      `target pod ${targetPod}: ${what}; rolled back (spec.onRestoreFailure: Rollback). Check the target node's ` +
        "runtime restores checkpoints (CRI-O enable_criu_support), or set onRestoreFailure: ColdStart to accept a fresh start",
    );
  }
  if (getCondition(s, CONDITION_RESTORE_VERIFIED)?.reason !== "ColdStart") {
    const message = `target pod ${targetPod}: ${what}; kept as a cold start (spec.onRestoreFailure: ColdStart): it replays every message since the checkpoint, the in-memory state from before it is lost`;
    ctx.defer((m) =>
      setCondition(m, ctx.now, {
        type: CONDITION_RESTORE_VERIFIED,
        status: "False",
        reason: "ColdStart",
        message,
      }),
    );
    ctx.event("Warning", "ColdStart", message);
  }
  return undefined;
}
