// Roll-forward after the point of no return.
//
// Sequential: once the source's deletion was requested (`sourceDeletionRequestedAt`, written
// before the delete), the source's in-memory state exists only in the checkpoint, and every
// message published since the replay queue R was bound (before the checkpoint) is in R. A
// rollback "to the source" would hand the name to a fresh pod built from the StatefulSet's
// template, without that state: loss. So from then on a failure, a deadline or a cancellation
// does not roll back: the pod named <sts>-<n> is (re)created from the checkpoint image and
// replays R.
//
// ShadowPod (and Sequential): once the cutover moved the primary queue P to the target
// (`Cutover=True`), the target holds acknowledged state no other pod has; deleting it and
// resuming the source loses what it took from P. Finalizing is retried instead.
//
// Why a fresh pod that the StatefulSet created under the name loses nothing when we delete it
// and restore the target from the checkpoint (restoring.ts, releaseName):
// - the fence (docs/messaging.md) guarantees the source applied every message published before
//   R was bound before the checkpoint, so everything in P after that is also in R;
// - the fresh pod consumes only P (it has no restored SDK state, so it never waits for or gets
//   START_REPLAY; the controller sends nothing to its control queue while it exists, and the
//   target is created only after the fresh pod object is gone). Whatever it acknowledged from P
//   is therefore still in R, and R is bound until the cutover, so it also holds whatever is
//   published while the fresh pod lives;
// - the target starts from the checkpoint, whose dedup window contains only what the source
//   applied before C, so it applies each of those R messages exactly once; messages the fresh
//   pod left unacknowledged go back to P and are skipped by the dedup window after the cutover.
// The fresh pod's own state is discarded with it (its side effects outside the broker, if the
// application has any, are not undone).
//
// Restoring the target again from the checkpoint is loss-free only while no target consumed R
// (the restored SDK waits for START_REPLAY, so before `replay.startRequestedAt`). After that a
// healthy target is never deleted by a roll-forward; a target that failed or vanished after
// START_REPLAY is recreated anyway (best effort: what it acknowledged from R is lost, the rest
// of R is replayed) and the Event says so.
import { describeError } from "../../common/errors.ts";
import type { ActivePhase, PhaseContext } from "../context.ts";
import type { MigrationFailure } from "../failures.ts";
import { uidOf } from "../names.ts";
import { pastNoReturnLive } from "../point-of-no-return.ts";
import { isNodeReady, podFailure } from "../pods.ts";
import { isOurs } from "../podspec.ts";
import { CONDITION_CUTOVER, isConditionTrue } from "../status.ts";

/** Roll-forwards before the migration gives up (and fails, keeping the checkpoint artifacts). */
export const MAX_ROLL_FORWARDS = 5;

/**
 * Instead of a rollback: recreate or retry so the migration can still complete. Returns false
 * when there is nothing left to try (the caller then records the failure).
 */
export async function rollForward(
  ctx: PhaseContext,
  phase: ActivePhase,
  err: MigrationFailure,
): Promise<boolean> {
  const s = ctx.m.status ?? {};
  if (s.failure || !(await pastNoReturnLive(ctx))) return false;
  // The workload was deleted and recreated: restoring into the new incarnation is what the
  // failure refuses, so retrying forward cannot help.
  if (err.reason === "WorkloadReplaced") return false;
  const attempts = s.rollForwards ?? 0;
  if (attempts >= MAX_ROLL_FORWARDS) return false;
  const cutOver = isConditionTrue(s, CONDITION_CUTOVER);
  // After the cutover the target is the only holder of the state: nothing to recreate it from.
  if (cutOver && err.reason === "TargetPodLost") return false;

  if (phase === "Finalizing" || cutOver) {
    await ctx.transition(
      "Finalizing",
      (m) => {
        m.status!.rollForwards = attempts + 1;
      },
      `rolling forward after ${err.reason} in ${phase} (attempt ${attempts + 1}/${MAX_ROLL_FORWARDS}): ${err.message}`,
    );
    ctx.event("Warning", "RollingForward", `${phase}: ${err.reason}: ${err.message}; Finalizing retried`);
    return true;
  }

  // Sequential, Restoring or Replaying: (re)create the target from the checkpoint.
  const { cluster } = ctx.deps;
  const uid = uidOf(ctx.m);
  const replayStarted = s.replay?.startRequestedAt !== undefined;
  const target = s.targetPod ? await cluster.getPod(ctx.namespace, s.targetPod) : undefined;
  const node = await chooseNode(ctx);
  const moved = node !== s.targetNode;
  let recreate = true;
  if (target && isOurs(target, uid) && !target.metadata?.deletionTimestamp) {
    const broken = podFailure(target) !== undefined || moved || !replayStarted || phase === "Restoring";
    if (broken) {
      await cluster.deletePod(ctx.namespace, target.metadata?.name ?? "", {
        gracePeriodSeconds: 0,
        uid: target.metadata?.uid,
      });
    } else {
      recreate = false; // a healthy target that consumed R keeps its state
    }
  }
  const lossy = recreate && replayStarted;
  await ctx.transition(
    recreate ? "Restoring" : phase,
    (m) => {
      m.status!.rollForwards = attempts + 1;
      m.status!.targetNode = node;
      if (recreate && m.status!.replay) delete m.status!.replay.startRequestedAt;
    },
    `rolling forward after ${err.reason} in ${phase} (attempt ${attempts + 1}/${MAX_ROLL_FORWARDS})` +
      (recreate ? `: ${s.targetPod} restored again from the checkpoint on ${node}` : ""),
  );
  ctx.deps.sent.delete(`${uid}/start-replay`);
  ctx.event(
    "Warning",
    "RollingForward",
    `${phase}: ${err.reason}: ${err.message}; ` +
      (recreate ? `recreating ${s.targetPod} from the checkpoint on ${node}` : `${phase} retried`) +
      (lossy ? " (the lost target had consumed part of the replay queue: those messages are lost)" : ""),
  );
  return true;
}

/**
 * The node to restore on: the target node while it is Ready. An image that can be pulled
 * anywhere (Registry) lets a target node that became unusable be replaced by the source node,
 * else any Ready schedulable node. An image only on the target node (Direct) keeps the target
 * node (the restore waits for it until its deadline, then rolls forward again).
 */
async function chooseNode(ctx: PhaseContext): Promise<string> {
  const s = ctx.m.status ?? {};
  const current = s.targetNode ?? "";
  const { cluster } = ctx.deps;
  const usable = async (name: string | undefined) => {
    if (!name) return false;
    const node = await cluster.getNode(name).catch(() => undefined);
    return node !== undefined && isNodeReady(node) && node.spec?.unschedulable !== true;
  };
  if (await usable(current)) return current;
  if (ctx.transport.imageOnTargetNodeOnly) return current;
  if (await usable(s.sourceNode)) return s.sourceNode!;
  try {
    for (const n of await cluster.listNodes()) {
      if (isNodeReady(n) && n.spec?.unschedulable !== true && n.metadata?.name) return n.metadata.name;
    }
  } catch (err) {
    ctx.deps.log.warn({ err: describeError(err) }, "listing nodes for a roll-forward");
  }
  return current;
}
