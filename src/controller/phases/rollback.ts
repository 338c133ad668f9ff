// Rollback after a failure or a cancellation: remove what the migration created, give the
// source back to its workload and its queue, then mark the migration Failed. Each step is
// idempotent; a rollback that cannot finish within its deadline marks the migration Failed
// anyway and says what was left.
import { describeError } from "../../common/errors.ts";
import { done, type Outcome, type PhaseContext } from "../context.ts";
import {
  ANNOTATION_DELETION_COST,
  ANNOTATION_HELD_LABELS,
  HANDOVER_FINALIZER,
  LABEL_MIGRATION,
  uidOf,
} from "../names.ts";
import { heldLabelsOf, isOurs } from "../podspec.ts";
import {
  CONDITION_CUTOVER,
  CONDITION_HANDED_OVER,
  CONDITION_ROLLED_BACK,
  getCondition,
  isConditionTrue,
  setCondition,
} from "../status.ts";
import { cleanupArtifacts } from "../artifacts.ts";
import { sourceGone } from "../point-of-no-return.ts";
import { releaseTarget } from "./handover.ts";
import { currentSourcePod, replayRef } from "./shared.ts";

export async function rollback(ctx: PhaseContext): Promise<Outcome> {
  const started = getCondition(ctx.m.status, CONDITION_ROLLED_BACK)?.lastTransitionTime;
  const overdue =
    started !== undefined && ctx.now - Date.parse(started) > ctx.deps.settings.rollbackTimeoutMs;
  let kept: string | undefined;
  try {
    kept = await undo(ctx);
  } catch (err) {
    if (!overdue) throw err; // retried with backoff
    ctx.event("Warning", "RollbackIncomplete", describeError(err));
    return finish(ctx, false, `rollback incomplete: ${describeError(err)}`);
  }
  if (kept) {
    ctx.event("Warning", "StateNotRestored", kept);
    return finish(ctx, false, kept);
  }
  return finish(ctx, true, "rolled back");
}

/**
 * Undoes what can be undone. Past the point of no return (rollforward.ts) this is reached only
 * once the roll-forward gave up; it then keeps what still holds the state and returns a
 * description of it (the rollback is not complete).
 */
async function undo(ctx: PhaseContext): Promise<string | undefined> {
  const { cluster } = ctx.deps;
  const s = ctx.m.status ?? {};
  const uid = uidOf(ctx.m);
  const handedOver = isConditionTrue(s, CONDITION_HANDED_OVER);
  const cutOver = isConditionTrue(s, CONDITION_CUTOVER);
  const still = sourceGone(s) ? await currentSourcePod(ctx) : undefined;
  const gone = sourceGone(s) && (!still || still.metadata?.deletionTimestamp !== undefined);

  // 1. The target pod, while it is still ours (never once handed over). After the cutover it
  //    holds state no other pod has: it is released to the workload instead.
  if (s.targetPod) {
    const target = await cluster.getPod(ctx.namespace, s.targetPod);
    if (target && isOurs(target, uid) && !target.metadata?.deletionTimestamp && cutOver) {
      await releaseTarget(ctx, target);
    } else if (target && isOurs(target, uid) && !target.metadata?.deletionTimestamp) {
      await cluster.deletePod(ctx.namespace, s.targetPod, {
        gracePeriodSeconds: 0,
        uid: target.metadata?.uid,
      });
      ctx.event("Normal", "TargetPodDeleted", `deleted ${s.targetPod}`);
    }
  }

  // 2. The source: labels and controller back (the StatefulSet re-adopts it), our finalizer and
  //    deletion cost off.
  const source = await currentSourcePod(ctx);
  if (source?.metadata) {
    const meta = source.metadata;
    const patch: { metadata: Record<string, unknown> } = {
      metadata: { resourceVersion: meta.resourceVersion },
    };
    if (meta.annotations?.[ANNOTATION_HELD_LABELS] !== undefined) {
      patch.metadata.labels = { ...heldLabelsOf(source), [LABEL_MIGRATION]: null };
      patch.metadata.annotations = { [ANNOTATION_HELD_LABELS]: null };
    }
    if (meta.annotations?.[ANNOTATION_DELETION_COST] !== undefined && !handedOver) {
      patch.metadata.annotations = {
        ...(patch.metadata.annotations as object),
        [ANNOTATION_DELETION_COST]: null,
      };
    }
    if ((meta.finalizers ?? []).includes(HANDOVER_FINALIZER)) {
      patch.metadata.finalizers = (meta.finalizers ?? []).filter((f) => f !== HANDOVER_FINALIZER);
    }
    if (Object.keys(patch.metadata).length > 1) {
      await cluster.mergePatchPod(ctx.namespace, meta.name ?? "", patch);
      ctx.event("Normal", "SourceRestored", `source pod ${meta.name} given back to its workload`);
    }
  }

  // 3. The broker: source consumes as before, replay queue gone.
  const ref = await replayRef(ctx).catch(() => undefined);
  if (ref && !handedOver && !cutOver && !gone) {
    await ctx.deps.messaging.rollback(ref, {
      sourcePod: ctx.m.spec.sourcePod,
      ...(s.replay?.replayQueue ? { replayQueue: s.replay.replayQueue } : {}),
    });
  }

  if (cutOver) {
    // The target runs from the checkpoint image(s) on its node: kept there; the rest released.
    await cleanupArtifacts(ctx, { completed: true });
    return `the cutover had moved the primary queue to ${s.targetPod}: it was kept (released to the workload) and the source was not resumed`;
  }
  if (gone) {
    // The source is gone: the checkpoint image(s) and the replay queue are all that is left of
    // its state. They are kept for a manual restore (the agent's expiry sweep and the queue's
    // x-expires remove them after an hour).
    const images = (s.containers ?? []).map((c) => c.checkpointImage ?? c.checkpointPath).filter(Boolean);
    return `the source was deleted and the roll-forward gave up: its state is only in ${images.join(", ") || "the checkpoint"} and replay queue ${s.replay?.replayQueue ?? "(none)"}; the workload controller recreates ${ctx.m.spec.sourcePod} without it`;
  }

  // 4. Archives and images (best effort).
  await cleanupArtifacts(ctx);
  return undefined;
}

async function finish(ctx: PhaseContext, complete: boolean, message: string): Promise<Outcome> {
  const failure = ctx.m.status?.failure;
  await ctx.transition(
    "Failed",
    (m) => {
      setCondition(m, ctx.now, {
        type: CONDITION_ROLLED_BACK,
        status: complete ? "True" : "False",
        reason: complete ? "RolledBack" : "RollbackIncomplete",
        message,
      });
    },
    failure ? `${failure.reason} in ${failure.phase}: ${failure.message} (${message})` : message,
  );
  return done();
}
