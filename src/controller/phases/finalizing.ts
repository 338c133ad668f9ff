// Finalizing: the loss-free cutover (messaging module), the hand-over to the workload's
// controller, then cleanup of checkpoint archives and images. Cleanup failures are reported
// as Warning Events and do not fail a migration whose pod is already serving.
import { describeError } from "../../common/errors.ts";
import { done, wait, type Outcome, type PhaseContext } from "../context.ts";
import { cleanupArtifacts } from "../artifacts.ts";
import { CONDITION_CUTOVER, CONDITION_HANDED_OVER, isConditionTrue, setCondition } from "../status.ts";
import { handOver, markSourceCheapest } from "./handover.ts";
import { replayRef } from "./shared.ts";

export async function finalizing(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const ref = await replayRef(ctx);
  const replayQueue = s.replay?.replayQueue;
  if (ref && replayQueue && !isConditionTrue(s, CONDITION_CUTOVER)) {
    // The source's deletion cost, beside the cutover (one round trip less on the way). Its
    // failure counts only once the cutover is recorded: a failure before that would roll back.
    const cheapest = markSourceCheapest(ctx).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    const result = await ctx.deps.messaging
      .cutover(ref, {
        sourcePod: ctx.m.spec.sourcePod,
        targetPod: s.targetPod ?? "",
        replayQueue,
        cutoff: s.replay?.cutoffReached === true,
      })
      .finally(() => cheapest);
    const now = ctx.now;
    await ctx.update((m) => {
      m.status!.replay = {
        ...m.status!.replay,
        messagesReplayed: Math.max(result.messagesReplayed, m.status!.replay?.messagesReplayed ?? 0),
      };
      setCondition(m, now, {
        type: CONDITION_CUTOVER,
        status: "True",
        reason: "CutOver",
        message: "target consumes the primary queue",
      });
    });
    const failed = await cheapest;
    if (failed) throw failed.err;
  }

  // Independent of each other: the nodes' artifacts and the broker's queues. Once the target is
  // adopted, beside the source's deletion.
  let cleaned = false;
  const cleanup = async () => {
    cleaned = true;
    await Promise.all([
      cleanupArtifacts(ctx, { completed: true }),
      ref && replayQueue
        ? ctx.deps.messaging.cleanup(ref, replayQueue).catch((err: unknown) => {
            ctx.event("Warning", "CleanupFailed", `replay queue cleanup: ${describeError(err)}`);
          })
        : undefined,
    ]);
  };
  if (!isConditionTrue(ctx.m.status, CONDITION_HANDED_OVER)) {
    // Adoption by the workload controller is a watch event away.
    if (!(await handOver(ctx, cleanup))) return wait(ctx.remainingMs());
    const now = ctx.now;
    // Reported with the phase change below: a crash before it hands over again (idempotent).
    ctx.defer((m) => {
      setCondition(m, now, {
        type: CONDITION_HANDED_OVER,
        status: "True",
        reason: "HandedOver",
        message: `${m.status?.targetPod} belongs to ${m.status?.owner ? `${m.status.owner.kind} ${m.status.owner.name}` : "no controller (bare pod)"}`,
      });
    });
  }

  if (!cleaned) await cleanup();
  await ctx.advance(undefined, `migrated to ${s.targetNode} as ${s.targetPod}`);
  return done();
}
