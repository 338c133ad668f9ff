// Hand-over: the pod holding the migrated state becomes the workload's own pod.
// - ReplicaSet: the source gets the lowest pod-deletion-cost, the target gets its held labels
//   back and loses the migration's owner reference; the ReplicaSet adopts it (an orphan that
//   matches its selector), sees one pod too many and would pick the source; we delete the
//   source ourselves right after adoption with a short grace period. The count of active pods
//   never drops below the replica count, so no fresh pod is created.
// - StatefulSet (Sequential): the target already has the source's name; with its labels back
//   the StatefulSet adopts it as that ordinal.
// - Bare pod: the target is released as a bare pod and the source deleted.
import type { V1Pod } from "@kubernetes/client-node";
import { controllerOf } from "../../kube/owners.ts";
import type { CachedReads } from "../adapters/cached-reads.ts";
import type { PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import {
  ANNOTATION_DELETION_COST,
  ANNOTATION_HELD_LABELS,
  KEY_MIGRATION_UID,
  LABEL_MIGRATION,
  LABEL_ROLE,
  MIN_DELETION_COST,
  uidOf,
} from "../names.ts";
import { handoverLabels, isOurs } from "../podspec.ts";
import { iso } from "../status.ts";
import { currentSourcePod } from "./shared.ts";

/**
 * Beside the source under a ReplicaSet: the source becomes the cheapest pod to delete. Before the
 * target's release (handOver calls it again, and finds it done); Finalizing runs it beside the
 * cutover, which it does not touch (a rollback removes the annotation). `source`: already read.
 */
export async function markSourceCheapest(ctx: PhaseContext, source?: V1Pod): Promise<void> {
  if (!ctx.strategy.runsBesideSource || ctx.m.status?.owner?.kind !== "ReplicaSet") return;
  const pod = source ?? (await currentSourcePod(ctx));
  if (!pod || pod.metadata?.deletionTimestamp) return;
  if (pod.metadata?.annotations?.[ANNOTATION_DELETION_COST] === MIN_DELETION_COST) return;
  await ctx.deps.cluster.mergePatchPod(ctx.namespace, pod.metadata?.name ?? "", {
    metadata: { annotations: { [ANNOTATION_DELETION_COST]: MIN_DELETION_COST } },
  });
}

/**
 * Returns true when the hand-over is complete, false while waiting for the workload controller.
 * `alongside` (the cleanup) runs once the target is adopted, beside the source's deletion.
 */
export async function handOver(ctx: PhaseContext, alongside?: () => Promise<unknown>): Promise<boolean> {
  const { cluster } = ctx.deps;
  const s = ctx.m.status ?? {};
  const owner = s.owner;
  // Beside the source (ShadowPod): the source goes once the workload has adopted the target.
  const shadow = ctx.strategy.runsBesideSource;
  const adopted = owner?.uid ? adoptionWatched(ctx, owner.uid, shadow) : undefined;
  if (adopted) return finish(ctx, adopted.source, alongside);
  const [target, source] = await Promise.all([
    cluster.getPod(ctx.namespace, s.targetPod ?? ""),
    shadow ? currentSourcePod(ctx) : undefined,
  ]);
  if (!target || target.metadata?.deletionTimestamp)
    return fail("TargetPodLost", `target pod ${s.targetPod} is gone`);

  // In this order: once released, the ReplicaSet may adopt the target at once and delete one
  // pod of the surplus; the source must already be the cheapest to delete by then.
  // (Kept before the release, not beside it: side by side the ReplicaSet deleted the target.)
  if (source) await markSourceCheapest(ctx, source);
  // The release's answer is the target as it stands after it: no read again (an adoption after
  // the release is a watch event on the target, which brings the next pass).
  const current = isOurs(target, uidOf(ctx.m)) ? await releaseTarget(ctx, target) : target;

  // The adoption is the workload controller's move; its update event brings us back.
  if (owner && controllerOf(current)?.uid !== owner.uid) return false;
  return finish(ctx, shadow ? source : undefined, alongside);
}

/**
 * The target adopted, as the pod watch shows it (the pass its update event brings): the
 * workload's controller reference on it (the migration's own was removed by the release, and a
 * pod has one controller) and no deletion mark; with the source's metadata when it runs beside.
 * Nothing else is needed from the pods, so nothing is read. Undefined when the watch does not
 * show that (not adopted yet, no watch): the caller reads the pods.
 */
function adoptionWatched(
  ctx: PhaseContext,
  ownerUid: string,
  shadow: boolean,
): { source: V1Pod | undefined } | undefined {
  const watch = (ctx.deps.cluster as Partial<CachedReads>).watchedMetadata?.bind(ctx.deps.cluster);
  const s = ctx.m.status ?? {};
  const target = watch?.("Pod", ctx.namespace, s.targetPod ?? "");
  if (!watch || !target || target.deletionTimestamp) return undefined;
  if (controllerOf({ metadata: target })?.uid !== ownerUid) return undefined;
  if (!shadow) return { source: undefined };
  const source = watch("Pod", ctx.namespace, ctx.m.spec.sourcePod);
  const sameSource = source && (!s.sourcePodUID || source.uid === s.sourcePodUID);
  return { source: sameSource ? { metadata: source } : undefined };
}

/** The adopted target's last steps: the source (if any, and not going already) is deleted beside `alongside`. */
async function finish(
  ctx: PhaseContext,
  source: V1Pod | undefined,
  alongside: (() => Promise<unknown>) | undefined,
): Promise<boolean> {
  const deletion = source && !source.metadata?.deletionTimestamp ? deleteSource(ctx, source) : undefined;
  // Independent of each other: both wait for the other's failure before it is thrown.
  const results = await Promise.allSettled([deletion, alongside?.()]);
  for (const r of results) if (r.status === "rejected") throw r.reason;
  return true;
}

async function deleteSource(ctx: PhaseContext, source: V1Pod): Promise<void> {
  if (!ctx.m.status?.sourceDeletionRequestedAt) {
    // A report only: beside the source (ShadowPod) its deletion decides nothing (Sequential
    // stores that intent before deleting, strategies/sequential.ts).
    const now = ctx.now;
    ctx.defer((m) => {
      m.status!.sourceDeletionRequestedAt = iso(now);
    });
  }
  await ctx.deps.cluster.deletePod(ctx.namespace, source.metadata?.name ?? "", {
    gracePeriodSeconds: ctx.deps.settings.sourceGraceSeconds,
    uid: source.metadata?.uid,
  });
  ctx.event("Normal", "SourceDeleted", `deleted source pod ${source.metadata?.name}`);
}

/** Gives the target its workload labels back and removes everything that ties it to the migration. */
export async function releaseTarget(ctx: PhaseContext, target: V1Pod): Promise<V1Pod> {
  const labels: Record<string, string | null> = handoverLabels(target);
  labels[LABEL_MIGRATION] = null;
  labels[LABEL_ROLE] = null;
  const migrationUid = uidOf(ctx.m);
  const released = await ctx.deps.cluster.mergePatchPod(ctx.namespace, target.metadata?.name ?? "", {
    metadata: {
      resourceVersion: target.metadata?.resourceVersion,
      labels,
      annotations: { [ANNOTATION_HELD_LABELS]: null, [KEY_MIGRATION_UID]: null },
      ownerReferences: (target.metadata?.ownerReferences ?? []).filter((r) => r.uid !== migrationUid),
    },
  });
  ctx.event(
    "Normal",
    "TargetReleased",
    `${target.metadata?.name} handed to ${ctx.m.status?.owner?.kind ?? "nobody (bare pod)"}`,
  );
  return released;
}
