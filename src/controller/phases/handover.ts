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

/** Returns true when the hand-over is complete, false while waiting for the workload controller. */
export async function handOver(ctx: PhaseContext): Promise<boolean> {
  const { cluster } = ctx.deps;
  const s = ctx.m.status ?? {};
  const owner = s.owner;
  // Beside the source (ShadowPod): the source goes once the workload has adopted the target.
  const shadow = ctx.strategy.runsBesideSource;
  const [target, source] = await Promise.all([
    cluster.getPod(ctx.namespace, s.targetPod ?? ""),
    shadow ? currentSourcePod(ctx) : undefined,
  ]);
  if (!target || target.metadata?.deletionTimestamp)
    return fail("TargetPodLost", `target pod ${s.targetPod} is gone`);

  // In this order: once released, the ReplicaSet may adopt the target at once and delete one
  // pod of the surplus; the source must already be the cheapest to delete by then.
  if (shadow && owner?.kind === "ReplicaSet" && source && !source.metadata?.deletionTimestamp) {
    if (source.metadata?.annotations?.[ANNOTATION_DELETION_COST] !== MIN_DELETION_COST) {
      await cluster.mergePatchPod(ctx.namespace, source.metadata?.name ?? "", {
        metadata: { annotations: { [ANNOTATION_DELETION_COST]: MIN_DELETION_COST } },
      });
    }
  }
  const released = isOurs(target, uidOf(ctx.m));
  if (released) await releaseTarget(ctx, target);

  if (owner) {
    // Read again only right after the release (the target read above predates it).
    const adopted = released ? await cluster.getPod(ctx.namespace, s.targetPod ?? "") : target;
    const ctrl = adopted ? controllerOf(adopted) : undefined;
    // The adoption is the workload controller's move; its update event brings us back.
    if (ctrl?.uid !== owner.uid) return false;
  }
  if (shadow && source && !source.metadata?.deletionTimestamp) {
    if (!s.sourceDeletionRequestedAt) {
      // A report only: beside the source (ShadowPod) its deletion decides nothing (Sequential
      // stores that intent before deleting, strategies/sequential.ts).
      const now = ctx.now;
      ctx.defer((m) => {
        m.status!.sourceDeletionRequestedAt = iso(now);
      });
    }
    await cluster.deletePod(ctx.namespace, source.metadata?.name ?? "", {
      gracePeriodSeconds: ctx.deps.settings.sourceGraceSeconds,
      uid: source.metadata?.uid,
    });
    ctx.event("Normal", "SourceDeleted", `deleted source pod ${source.metadata?.name}`);
  }
  return true;
}

/** Gives the target its workload labels back and removes everything that ties it to the migration. */
export async function releaseTarget(ctx: PhaseContext, target: V1Pod): Promise<void> {
  const labels: Record<string, string | null> = handoverLabels(target);
  labels[LABEL_MIGRATION] = null;
  labels[LABEL_ROLE] = null;
  const migrationUid = uidOf(ctx.m);
  await ctx.deps.cluster.mergePatchPod(ctx.namespace, target.metadata?.name ?? "", {
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
}
