// Restoring: start the target pod on the target node from the checkpoint image(s).
// ShadowPod: a pod of its own name beside the source, held out of the workload's selector.
// Sequential: the source's name. The source is orphaned (so the StatefulSet controller is no
// longer woken by it), held by a finalizer while it stops, and the name is taken over in one
// breath after the finalizer is released (see docs/controller.md, "Hand-over").
import type { V1Pod } from "@kubernetes/client-node";
import { isAlreadyExists } from "../../kube/errors.ts";
import { controllerOf } from "../../kube/owners.ts";
import { next, wait, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { HANDOVER_FINALIZER, LABEL_MIGRATION, uidOf } from "../names.ts";
import { isNodeReady, isPodReady, isPodStopped, podFailure } from "../pods.ts";
import { buildTargetPod, holdLabels, isOurs } from "../podspec.ts";
import { iso } from "../status.ts";
import { ANNOTATION_HELD_LABELS } from "../names.ts";
import { ownerSelector, requireSourcePod } from "./shared.ts";

export async function restoring(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const targetName = s.targetPod ?? "";
  const uid = uidOf(ctx.m);
  await requireTargetNode(ctx);

  let target = await ctx.deps.cluster.getPod(ctx.namespace, targetName);
  if (!isOurs(target, uid)) {
    if (s.strategy === "Sequential") {
      if (!(await releaseSourceName(ctx))) return wait(ctx.remainingMs());
    } else if (target) {
      return fail("TargetPodNameTaken", `pod ${targetName} exists and was not created by this migration`);
    }
    target = await createTarget(ctx, await sourceTemplate(ctx));
  }
  if (!target) return fail("TargetPodLost", `target pod ${targetName} is gone`);

  const failure = podFailure(target);
  if (failure) return fail("RestoreFailed", `target pod ${targetName}: ${failure}`);
  if (!isPodReady(target)) return wait(ctx.remainingMs());
  await ctx.transition("Replaying", undefined, `target pod ${targetName} ready on ${s.targetNode}`);
  return next();
}

async function requireTargetNode(ctx: PhaseContext): Promise<void> {
  const name = ctx.m.status?.targetNode ?? "";
  const node = await ctx.deps.cluster.getNode(name);
  if (!node) fail("TargetNodeLost", `node ${name} is gone`);
  else if (!isNodeReady(node)) fail("TargetNodeNotReady", `node ${name} is not Ready`);
}

/** The spec the target is built from: the source pod, or for Sequential the copy kept in memory of it. */
async function sourceTemplate(ctx: PhaseContext): Promise<V1Pod> {
  if (ctx.m.status?.strategy === "Sequential") {
    const kept = sequentialTemplates.get(uidOf(ctx.m));
    if (kept) return kept;
    return fail(
      "SourceSpecLost",
      "the source pod is gone and its spec was not kept (controller restarted mid hand-over)",
    );
  }
  return requireSourcePod(ctx);
}

// Sequential deletes the source before the target exists. Its object is held by the hand-over
// finalizer (so a restarted controller reads it again) until the moment the name is taken
// over; only for those milliseconds is the spec kept in memory alone.
const sequentialTemplates = new Map<string, V1Pod>();

/** Drops what was kept in memory for a migration that ended. */
export function forgetSourceTemplate(migrationUid: string): void {
  sequentialTemplates.delete(migrationUid);
}

async function createTarget(ctx: PhaseContext, source: V1Pod): Promise<V1Pod> {
  const s = ctx.m.status ?? {};
  const images: Record<string, string> = {};
  for (const c of s.containers ?? []) {
    if (!c.checkpointImage)
      return fail("CheckpointImageMissing", `container ${c.name} has no checkpoint image`);
    images[c.name] = c.checkpointImage;
  }
  const pod = buildTargetPod(source, ctx.m, {
    name: s.targetPod ?? "",
    targetNode: s.targetNode ?? "",
    images,
    localImages: s.transferMode === "Direct",
    holdFrom: await ownerSelector(ctx),
  });
  try {
    const created = await ctx.deps.cluster.createPod(ctx.namespace, pod);
    ctx.event("Normal", "TargetPodCreated", `created ${s.targetPod} on ${s.targetNode}`);
    return created;
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    const existing = await ctx.deps.cluster.getPod(ctx.namespace, pod.metadata?.name ?? "");
    if (existing && isOurs(existing, uidOf(ctx.m))) return existing;
    if (s.strategy === "Sequential") {
      return fail(
        "HandoverRaceLost",
        `the workload controller recreated ${s.targetPod} before the target could take the name`,
      );
    }
    return fail("TargetPodNameTaken", `pod ${s.targetPod} exists and was not created by this migration`);
  }
}

/**
 * Sequential: stop the source and free its name. Returns true once the name is free (the
 * source object is gone), false while waiting for it to stop.
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
    // Someone else's pod under the name: the workload controller won the race for it.
    return fail(
      "HandoverRaceLost",
      `pod ${name} was recreated by its controller before the target could take the name`,
    );
  }
  sequentialTemplates.set(uidOf(ctx.m), pod);

  if (!s.sourceDeletionRequestedAt) {
    if (pod.metadata?.deletionTimestamp)
      fail("SourcePodLost", `source pod ${name} is being deleted by someone else`);
    await orphanAndHold(ctx, pod);
    const now = ctx.now;
    await ctx.update((m) => {
      m.status!.sourceDeletionRequestedAt = iso(now);
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
  if (!isPodStopped(pod)) return false;
  const finalizers = pod.metadata.finalizers ?? [];
  if (finalizers.includes(HANDOVER_FINALIZER)) {
    await cluster.mergePatchPod(ctx.namespace, name, {
      metadata: {
        resourceVersion: pod.metadata.resourceVersion,
        finalizers: finalizers.filter((f) => f !== HANDOVER_FINALIZER),
      },
    });
  }
  // Removing the last finalizer of a pod the kubelet has confirmed deletes it in that request.
  return (await cluster.getPod(ctx.namespace, name)) === undefined;
}

/**
 * Takes the source out of its StatefulSet (controller reference removed, selector labels held
 * back) and puts the hand-over finalizer on it, in one write guarded by resourceVersion. The
 * StatefulSet controller then fails to recreate the name (AlreadyExists) and is not woken by the
 * orphan's deletion, which closes the window in which it could create a fresh pod.
 */
async function orphanAndHold(ctx: PhaseContext, pod: V1Pod): Promise<void> {
  if ((pod.metadata?.finalizers ?? []).includes(HANDOVER_FINALIZER)) return; // done before a restart
  const owner = ctx.m.status?.owner;
  const selector = await ownerSelector(ctx);
  const labels = pod.metadata?.labels ?? {};
  const { held } = holdLabels(labels, selector);
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
