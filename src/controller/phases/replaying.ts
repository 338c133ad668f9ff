// Replaying: the target consumes the replay queue until what is left is small enough for the
// cutover's final, complete drain (messaging module: decideCutover) or the cutoff fires. The queue
// depth cannot be watched, so this is the one place that polls, at a short interval.
import { next, wait, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { uidOf } from "../names.ts";
import { isPodReady, podFailure } from "../pods.ts";
import { isOurs } from "../podspec.ts";
import { iso, timingOf } from "../status.ts";
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
    if (pastNoReturn(s)) return wait(Math.min(ctx.deps.settings.replayPollMs, ctx.remainingMs()));
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
    await ctx.deps.messaging.startReplay(ref, target.metadata?.name ?? "", replayQueue);
    ctx.deps.sent.add(sentKey);
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
  return wait(Math.min(ctx.deps.settings.replayPollMs, cutoffMs - elapsed));
}
