// What a migration leaves on nodes and registries (checkpoint archives, records, images), and
// their release at the end: kept where the restored pod runs from them, removed otherwise.
import { describeError } from "../common/errors.ts";
import type { PhaseContext } from "./context.ts";
import { checkpointKey, uidOf } from "./names.ts";
import type { ArtifactRef } from "./ports.ts";

/**
 * Everything a checkpoint was requested for: the agent may hold a record even without a result.
 * `completed`: the target pod runs from the checkpoint image(s) on the target node, which are
 * therefore kept there (rollback and cancellation remove them).
 */
export function artifactsOf(ctx: PhaseContext, opts: { completed?: boolean } = {}): ArtifactRef[] {
  const s = ctx.m.status ?? {};
  return (s.containers ?? [])
    .filter((c) => c.checkpointPath || c.checkpointImage || c.checkpointRequestedAt)
    .map((c) => ({
      mode: ctx.transport.name,
      sourceNode: s.sourceNode ?? "",
      namespace: ctx.namespace,
      pod: ctx.m.spec.sourcePod,
      container: c.name,
      key: checkpointKey(uidOf(ctx.m), c.name),
      ...(s.targetNode ? { targetNode: s.targetNode } : {}),
      ...(c.checkpointPath ? { archivePath: c.checkpointPath } : {}),
      ...(c.checkpointImage ? { image: c.checkpointImage } : {}),
      ...(opts.completed ? { keepTargetImage: true } : {}),
    }));
}

export async function cleanupArtifacts(ctx: PhaseContext, opts: { completed?: boolean } = {}): Promise<void> {
  const artifacts = artifactsOf(ctx, opts);
  if (artifacts.length === 0) return;
  try {
    const report = await ctx.deps.transfer.cleanup(artifacts);
    for (const m of report?.started ?? []) ctx.event("Normal", "CheckpointCleanupJob", m);
    for (const w of report?.warnings ?? []) ctx.event("Warning", "CheckpointArtifactKept", w);
  } catch (err) {
    ctx.event("Warning", "CleanupFailed", `checkpoint artifacts: ${describeError(err)}`);
  }
}
