// Sequential: the target takes over the source's name, which is the identity of a StatefulSet
// pod. The source is orphaned (so the StatefulSet controller is no longer woken by it), held by a
// finalizer while it stops, and the name is taken over in one breath after the finalizer is
// released (docs/controller.md, "Hand-over"). Once the source's deletion is requested its state
// exists only in the checkpoint: the point of no return (rollforward.ts). A pod the StatefulSet
// created under the name after that is removed the same way and the target still created from
// the checkpoint (rollforward.ts says why that loses nothing).
import type { V1Pod } from "@kubernetes/client-node";
import type { StatefulMigrationStatus } from "../../api/v1alpha1/index.ts";
import { controllerOf } from "../../kube/owners.ts";
import type { PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { ANNOTATION_HELD_LABELS, HANDOVER_FINALIZER, LABEL_MIGRATION } from "../names.ts";
import { ownerSelector } from "../phases/shared.ts";
import { isPodStopped } from "../pods.ts";
import { holdLabels } from "../podspec.ts";
import { iso } from "../status.ts";
import type { Strategy } from "./types.ts";

const sourceGone = (s: StatefulMigrationStatus | undefined): boolean =>
  s?.strategy === "Sequential" && s.sourceDeletionRequestedAt !== undefined;

export const sequential: Strategy = {
  name: "Sequential",
  runsBesideSource: false,
  targetPodName: (m) => m.spec.sourcePod,
  freeTargetName: (ctx) => releaseSourceName(ctx),
  // Written to the status with the deletion intent (the source is gone when it is needed again).
  targetTemplate: async (ctx) => {
    const written = ctx.m.status?.sourcePodTemplate;
    if (written) return JSON.parse(written) as V1Pod;
    return fail("SourceSpecLost", "the source pod is gone and its spec was not recorded");
  },
  nameTaken: (ctx) => {
    const s = ctx.m.status;
    if (sourceGone(s)) {
      // The next pass removes the workload controller's pod (releaseForeignName).
      ctx.event(
        "Warning",
        "HandoverRaceLost",
        `the workload controller recreated ${s?.targetPod} before the target could take the name; replacing it with the target`,
      );
      return;
    }
    fail(
      "HandoverRaceLost",
      `the workload controller recreated ${s?.targetPod} before the target could take the name`,
    );
  },
  sourceGone,
};

/**
 * Stops the source and frees its name. Returns true once the name is free (the source object is
 * gone), false while waiting for it to stop.
 */
async function releaseSourceName(ctx: PhaseContext): Promise<boolean> {
  const { cluster, settings } = ctx.deps;
  const s = ctx.m.status ?? {};
  const name = ctx.m.spec.sourcePod;
  const pod = await cluster.getPod(ctx.namespace, name);
  if (!pod) {
    if (!s.sourceDeletionRequestedAt)
      fail("SourcePodLost", `source pod ${name} was deleted during the migration`);
    return true;
  }
  if (pod.metadata?.uid !== s.sourcePodUID) {
    // Someone else's pod under the name: the workload controller won the race for it. Past the
    // point of no return it is a pod without the workload's state: it goes, the target comes.
    if (sourceGone(s)) return releaseForeignName(ctx, pod);
    return fail(
      "HandoverRaceLost",
      `pod ${name} was recreated by its controller before the target could take the name`,
    );
  }

  if (!s.sourceDeletionRequestedAt) {
    if (pod.metadata?.deletionTimestamp)
      fail("SourcePodLost", `source pod ${name} is being deleted by someone else`);
    await orphanAndHold(ctx, pod);
    const now = ctx.now;
    const template = JSON.stringify({
      metadata: {
        name: pod.metadata?.name,
        labels: pod.metadata?.labels,
        annotations: pod.metadata?.annotations,
      },
      spec: pod.spec,
    } satisfies V1Pod);
    // The point of no return: from here on the migration only rolls forward (rollforward.ts).
    await ctx.update((m) => {
      m.status!.sourceDeletionRequestedAt = iso(now);
      m.status!.sourcePodTemplate = template;
    });
    await cluster.deletePod(ctx.namespace, name, {
      gracePeriodSeconds: settings.sourceGraceSeconds,
      uid: pod.metadata?.uid,
    });
    ctx.event(
      "Normal",
      "SourceStopping",
      `deleting ${name} (grace ${settings.sourceGraceSeconds}s) to take over its name`,
    );
    return false;
  }
  if (!pod.metadata?.deletionTimestamp) {
    // Crashed between recording the intent and deleting.
    await cluster.deletePod(ctx.namespace, name, {
      gracePeriodSeconds: settings.sourceGraceSeconds,
      uid: pod.metadata?.uid,
    });
    return false;
  }
  return dropHoldWhenStopped(ctx, pod);
}

/**
 * Past the point of no return, a pod under the name that is not the source and not ours (the
 * StatefulSet recreated the ordinal from its template): orphan and hold it like the source,
 * delete it with the short grace period, and free the name once it stopped.
 */
async function releaseForeignName(ctx: PhaseContext, pod: V1Pod): Promise<boolean> {
  const name = pod.metadata?.name ?? "";
  if (!pod.metadata?.deletionTimestamp) {
    await orphanAndHold(ctx, pod);
    await ctx.deps.cluster.deletePod(ctx.namespace, name, {
      gracePeriodSeconds: ctx.deps.settings.sourceGraceSeconds,
      uid: pod.metadata?.uid,
    });
    ctx.event(
      "Warning",
      "FreshPodReplaced",
      `deleting ${name} (uid ${pod.metadata?.uid}), created by the workload controller without the migrated state; the target is restored from the checkpoint in its place`,
    );
    return false;
  }
  return dropHoldWhenStopped(ctx, pod);
}

/** Once the kubelet stopped a held pod, removes the hand-over finalizer; true when the name is free. */
async function dropHoldWhenStopped(ctx: PhaseContext, pod: V1Pod): Promise<boolean> {
  const { cluster } = ctx.deps;
  const name = pod.metadata?.name ?? "";
  if (!isPodStopped(pod)) return false;
  const finalizers = pod.metadata?.finalizers ?? [];
  if (finalizers.includes(HANDOVER_FINALIZER)) {
    await cluster.mergePatchPod(ctx.namespace, name, {
      metadata: {
        resourceVersion: pod.metadata?.resourceVersion,
        finalizers: finalizers.filter((f) => f !== HANDOVER_FINALIZER),
      },
    });
  }
  // Removing the last finalizer of a pod the kubelet has confirmed deletes it in that request.
  return (await cluster.getPod(ctx.namespace, name)) === undefined;
}

/**
 * Takes the pod out of its StatefulSet (controller reference removed, selector labels held
 * back) and puts the hand-over finalizer on it, in one write guarded by resourceVersion. The
 * StatefulSet controller then fails to recreate the name (AlreadyExists) and is not woken by the
 * orphan's deletion, which closes the window in which it could create a fresh pod.
 */
async function orphanAndHold(ctx: PhaseContext, pod: V1Pod): Promise<void> {
  if ((pod.metadata?.finalizers ?? []).includes(HANDOVER_FINALIZER)) return; // done before a restart
  const owner = ctx.m.status?.owner;
  const selector = await ownerSelector(ctx);
  const { held } = holdLabels(pod.metadata?.labels ?? {}, selector);
  const labelPatch: Record<string, string | null> = { [LABEL_MIGRATION]: ctx.name };
  for (const k of Object.keys(held)) labelPatch[k] = null;
  const refs = (pod.metadata?.ownerReferences ?? []).filter((r) => !(owner && r.uid === owner.uid));
  const ctrl = controllerOf(pod);
  if (ctrl && owner && ctrl.uid !== owner.uid)
    fail("OwnerChanged", `source pod is now controlled by ${ctrl.kind} ${ctrl.name}`);
  await ctx.deps.cluster.mergePatchPod(ctx.namespace, pod.metadata?.name ?? "", {
    metadata: {
      resourceVersion: pod.metadata?.resourceVersion,
      labels: labelPatch,
      annotations: { [ANNOTATION_HELD_LABELS]: JSON.stringify(held) },
      ownerReferences: refs,
      finalizers: [...(pod.metadata?.finalizers ?? []), HANDOVER_FINALIZER],
    },
  });
}
