// Restoring: start the target pod on the target node from the checkpoint image(s). The strategy
// names the target and frees its name (ShadowPod: a pod of its own beside the source, held out of
// the workload's selector; Sequential: the source's name, taken over as strategies/sequential.ts
// describes); the transfer mode says whether the image can be pulled or is only on the node.
import type { V1Pod } from "@kubernetes/client-node";
import { isAlreadyExists } from "../../kube/errors.ts";
import type { CachedReads } from "../adapters/cached-reads.ts";
import { next, wait, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { checkIncarnation } from "../lifecycle/incarnation.ts";
import { uidOf } from "../names.ts";
import { isNodeReady, isPodReady, podFailure } from "../pods.ts";
import { buildTargetPod, isOurs } from "../podspec.ts";
import { sourceGone } from "../point-of-no-return.ts";
import { iso } from "../status.ts";
import { ownerSelector } from "./shared.ts";

export async function restoring(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const targetName = s.targetPod ?? "";
  // Transferring's phase change (with its results) is written beside this pass: a crash before
  // it lands repeats the transfers (idempotent), and a target created meanwhile is found as ours.
  ctx.storeBeside();
  // A target the pod watch has never shown is not read: creating it finds out if the watch lags
  // (AlreadyExists, then it is read; createTarget).
  const absent = (ctx.deps.cluster as Partial<CachedReads>).absent?.("Pod", ctx.namespace, targetName);
  // Two independent reads, side by side (this pass repeats while the target starts).
  const [nodeUsable, current] = await Promise.all([
    requireTargetNode(ctx),
    absent === true ? undefined : ctx.deps.cluster.getPod(ctx.namespace, targetName),
  ]);
  if (!nodeUsable) return wait(ctx.remainingMs());
  let target = current;
  if (!isOurs(target, uidOf(ctx.m))) {
    // Before anything is done to the name (Sequential stops the source): a checkpoint is only
    // restored into the incarnation of the workload it was taken of.
    await checkIncarnation(ctx);
    if (!(await ctx.strategy.freeTargetName(ctx, target))) return wait(ctx.remainingMs());
    target = await createTarget(ctx);
    // The workload controller took the name in the round trip: the next pass frees it again.
    if (!target) return wait(0);
  }
  if (!target) return fail("TargetPodLost", `target pod ${targetName} is gone`);

  const failure = podFailure(target);
  if (failure) return fail("RestoreFailed", `target pod ${targetName}: ${failure}`);
  if (!isPodReady(target)) return wait(ctx.remainingMs());
  const now = ctx.now;
  await ctx.advance((m) => {
    // Replaying's first act, in this write: START_REPLAY follows at once in this reconcile.
    if (m.status?.replay?.replayQueue) m.status.replay.startRequestedAt ??= iso(now);
  }, `target pod ${targetName} ready on ${s.targetNode}`);
  return next();
}

/** False while waiting for the node (image only there, past the point of no return); fails when it is unusable. */
async function requireTargetNode(ctx: PhaseContext): Promise<boolean> {
  const name = ctx.m.status?.targetNode ?? "";
  const node = await ctx.deps.cluster.getNode(name);
  // The checkpoint image exists only on that node and the source is gone: wait for the node (until
  // the phase deadline, then the roll-forward retries) rather than fail at once.
  if (ctx.transport.imageOnTargetNodeOnly && sourceGone(ctx.m.status) && (!node || !isNodeReady(node)))
    return false;
  if (!node) fail("TargetNodeLost", `node ${name} is gone`);
  else if (!isNodeReady(node)) fail("TargetNodeNotReady", `node ${name} is not Ready`);
  return true;
}

async function createTarget(ctx: PhaseContext): Promise<V1Pod | undefined> {
  const s = ctx.m.status ?? {};
  const images: Record<string, string> = {};
  for (const c of s.containers ?? []) {
    if (!c.checkpointImage)
      return fail("CheckpointImageMissing", `container ${c.name} has no checkpoint image`);
    images[c.name] = c.checkpointImage;
  }
  // Two independent reads, side by side: the spec to build from and the selector to hold out of.
  const [source, holdFrom] = await Promise.all([ctx.strategy.targetTemplate(ctx), ownerSelector(ctx)]);
  const pod = buildTargetPod(source, ctx.m, {
    name: s.targetPod ?? "",
    targetNode: s.targetNode ?? "",
    images,
    localImages: ctx.transport.imageOnTargetNodeOnly,
    holdFrom,
  });
  try {
    const created = await ctx.deps.cluster.createPod(ctx.namespace, pod);
    ctx.event("Normal", "TargetPodCreated", `created ${s.targetPod} on ${s.targetNode}`);
    return created;
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    const existing = await ctx.deps.cluster.getPod(ctx.namespace, pod.metadata?.name ?? "");
    if (existing && isOurs(existing, uidOf(ctx.m))) return existing;
    ctx.strategy.nameTaken(ctx);
    return undefined;
  }
}
