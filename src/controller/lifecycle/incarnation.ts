// Incarnations: a workload deleted and recreated under the same name (a StatefulSet re-applied
// after `kubectl delete`, often with `--cascade=orphan` to change an immutable field) is another
// object with another UID. A checkpoint is of the incarnation the migration started on: its UID
// is recorded in status.owner at Pending, sent with every checkpoint, send and pull (the agents
// record it and annotate the images with it), and checked against the live object before the
// transfer and before the target is created. A checkpoint is never restored into another one.
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import type { WorkloadRef } from "../../transfer/types.ts";
import type { PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { uidOf } from "../names.ts";
import { isOurs } from "../podspec.ts";

export const REASON_WORKLOAD_REPLACED = "WorkloadReplaced";

/**
 * The workload the migration's checkpoint is of: the source pod's controller as recorded at
 * Pending (StatefulSet, or a Deployment's ReplicaSet), or the source pod itself for a bare pod.
 * Undefined before Pending recorded it.
 */
export function workloadOf(m: StatefulMigration): WorkloadRef | undefined {
  const s = m.status;
  if (s?.owner?.uid) return { kind: s.owner.kind, name: s.owner.name, uid: s.owner.uid };
  if (s?.sourcePodUID) return { kind: "Pod", name: m.spec.sourcePod, uid: s.sourcePodUID };
  return undefined;
}

/**
 * What the user sees, and what to do about it. `sourceStopped`: Sequential past the point of no
 * return (the source already deleted for the hand-over), so nothing can be rolled back.
 */
export function workloadReplacedMessage(was: WorkloadRef, nowUid: string, sourceStopped = false): string {
  const what = was.kind === "Pod" ? `pod ${was.name}` : `${was.kind} ${was.name}`;
  const replaced =
    `${what} was deleted and recreated during the migration (uid ${was.uid} when the checkpoint ` +
    `was taken, now ${nowUid}): the checkpoint is of the previous incarnation and is not restored ` +
    `into the new one.`;
  if (sourceStopped)
    return (
      `${replaced} The source pod had already been stopped for the hand-over, so its in-memory state ` +
      `exists only in the checkpoint, which is kept while this StatefulMigration exists; the new ` +
      `${was.kind === "Pod" ? "pod" : was.kind} runs as its own spec says. Delete this StatefulMigration ` +
      `once the state is no longer needed.`
    );
  return (
    `${replaced} The migration is rolled back and its checkpoint removed; the new ` +
    `${was.kind === "Pod" ? "pod" : was.kind} runs as its own spec says. To move its pod, create a new ` +
    `StatefulMigration.`
  );
}

/**
 * Fails the migration with `WorkloadReplaced` when the workload now under the recorded name is
 * another object than the one checkpointed. A workload that is gone (not recreated) is left to
 * the phases' own checks (`OwnerLost`, `SourcePodLost`). A bare pod is checked only while the
 * migration has not deleted it itself (Sequential frees the name on purpose), and a pod that is
 * the migration's own target never counts.
 */
export async function checkIncarnation(ctx: PhaseContext): Promise<void> {
  const was = workloadOf(ctx.m);
  if (!was) return;
  const { cluster } = ctx.deps;
  let nowUid: string | undefined;
  if (was.kind === "StatefulSet") {
    nowUid = (await cluster.getStatefulSet(ctx.namespace, was.name))?.metadata?.uid;
  } else if (was.kind === "ReplicaSet") {
    nowUid = (await cluster.getReplicaSet(ctx.namespace, was.name))?.metadata?.uid;
  } else if (was.kind === "Pod") {
    if (ctx.m.status?.owner || ctx.m.status?.sourceDeletionRequestedAt) return;
    const pod = await cluster.getPod(ctx.namespace, was.name);
    if (pod && isOurs(pod, uidOf(ctx.m))) return;
    nowUid = pod?.metadata?.uid;
  } else return;
  if (nowUid === undefined || nowUid === was.uid) return;
  fail(
    REASON_WORKLOAD_REPLACED,
    workloadReplacedMessage(was, nowUid, ctx.m.status?.sourceDeletionRequestedAt !== undefined),
  );
}
