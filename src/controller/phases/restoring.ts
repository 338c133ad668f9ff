// Restoring: start the target pod on the target node from the checkpoint image(s).
// ShadowPod: a pod of its own name beside the source, held out of the workload's selector.
// Sequential: the source's name. The source is orphaned (so the StatefulSet controller is no
// longer woken by it), held by a finalizer while it stops, and the name is taken over in one
// breath after the finalizer is released (see docs/controller.md, "Hand-over"). Past the
// point of no return (the source's deletion requested) a pod the StatefulSet created under the
// name in the meantime is removed the same way and the target still created from the checkpoint
// (see rollforward.ts for why that loses nothing).
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
import { sourceGone } from "./rollforward.ts";
import { ownerSelector, requireSourcePod } from "./shared.ts";

export async function restoring(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const targetName = s.targetPod ?? "";
  const uid = uidOf(ctx.m);
  if (!(await requireTargetNode(ctx))) return wait(ctx.remainingMs());

  let target = await ctx.deps.cluster.getPod(ctx.namespace, targetName);
  if (!isOurs(target, uid)) {
    if (s.strategy === "Sequential") {
      if (!(await releaseSourceName(ctx))) return wait(ctx.remainingMs());
    } else if (target) {
      return fail("TargetPodNameTaken", `pod ${targetName} exists and was not created by this migration`);
    }
    target = await createTarget(ctx, await sourceTemplate(ctx));
    // The StatefulSet took the name in the round trip: the next pass removes its pod.
    if (!target) return wait(0);
  }
  if (!target) return fail("TargetPodLost", `target pod ${targetName} is gone`);

  const failure = podFailure(target);
  if (failure) return fail("RestoreFailed", `target pod ${targetName}: ${failure}`);
  if (!isPodReady(target)) return wait(ctx.remainingMs());
  await ctx.transition("Replaying", undefined, `target pod ${targetName} ready on ${s.targetNode}`);
  return next();
}

/** False while waiting for the node (Direct, past the point of no return); fails when it is unusable. */
async function requireTargetNode(ctx: PhaseContext): Promise<boolean> {
  const name = ctx.m.status?.targetNode ?? "";
  const node = await ctx.deps.cluster.getNode(name);
  // Direct past the point of no return: the checkpoint image exists only on that node, so wait
  // for it (until the phase deadline, then the roll-forward retries) rather than fail at once.
  const direct = (ctx.m.status?.transferMode ?? ctx.m.spec.transferMode) === "Direct";
  if (direct && sourceGone(ctx.m.status) && (!node || !isNodeReady(node))) return false;
  if (!node) fail("TargetNodeLost", `node ${name} is gone`);
  else if (!isNodeReady(node)) fail("TargetNodeNotReady", `node ${name} is not Ready`);
  return true;
}

/**
 * The spec the target is built from: the source pod, or for Sequential the copy written to the
 * status with `sourceDeletionRequestedAt` (or kept in memory, for a status written before it).
 */
async function sourceTemplate(ctx: PhaseContext): Promise<V1Pod> {
  if (ctx.m.status?.strategy === "Sequential") {
    const written = ctx.m.status.sourcePodTemplate;
    if (written) return JSON.parse(written) as V1Pod;
    const kept = sequentialTemplates.get(uidOf(ctx.m));
    if (kept) return kept;
    return fail(
      "SourceSpecLost",
      "the source pod is gone and its spec was not kept (controller restarted mid hand-over)",
    );
  }
  return requireSourcePod(ctx);
}

// Sequential deletes the source before the target exists. Its labels, annotations and spec are
// written to the status with the deletion intent, so the target can be created (again) from the
// checkpoint after a controller restart or a roll-forward; the in-memory copy is a fallback.
const sequentialTemplates = new Map<string, V1Pod>();

/** Drops what was kept in memory for a migration that ended. */
export function forgetSourceTemplate(migrationUid: string): void {
  sequentialTemplates.delete(migrationUid);
}

async function createTarget(ctx: PhaseContext, source: V1Pod): Promise<V1Pod | undefined> {
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
      if (sourceGone(s)) {
        ctx.event(
          "Warning",
          "HandoverRaceLost",
          `the workload controller recreated ${s.targetPod} before the target could take the name; replacing it with the target`,
        );
        return undefined;
      }
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
    // Someone else's pod under the name: the workload controller won the race for it. Past the
    // point of no return it is a pod without the workload's state: it goes, the target comes.
    if (sourceGone(s)) return releaseForeignName(ctx, pod);
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
