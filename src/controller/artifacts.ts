// What a migration leaves on nodes and registries (checkpoint archives, records, images), and
// their release at the end: kept where the restored pod runs from them, removed otherwise.
import { describeError } from "../common/errors.ts";
import type { PhaseContext } from "./context.ts";
import { checkpointKey, checkpointTag, uidOf } from "./names.ts";
import type { ArtifactRef } from "./ports.ts";
import { MAX_CLEANUP_SETTLE_SECONDS } from "../transfer/job.ts";

/**
 * Clock skew between the controller and a node allowed for in an archive window (the kubelet
 * names the archive by its own clock, in whole seconds).
 */
export const ARCHIVE_WINDOW_MARGIN_SECONDS = 10;

/**
 * Where the archive of a node-proxy checkpoint requested at `requestedAt` (whose answer was
 * lost) can be found: the kubelet stamps it when it takes the request, so within
 * [requestedAt − margin, requestedAt + timeout + margin], and never after the request's failure
 * was known (`now`, the cleanup: + margin), so that a later checkpoint of the same container
 * (the next migration of the pod) is outside. A checkpoint stamped in the window has ended
 * (archive complete or none) by `to + timeout` (settleUntil). Undefined for an unreadable time.
 */
export function archiveWindowOf(
  requestedAt: string,
  timeoutSeconds: number,
  now: number,
): NonNullable<ArtifactRef["archiveWindow"]> | undefined {
  const at = Date.parse(requestedAt);
  if (!Number.isFinite(at)) return undefined;
  const margin = ARCHIVE_WINDOW_MARGIN_SECONDS * 1000;
  const timeout = Math.max(0, timeoutSeconds) * 1000;
  const from = at - margin;
  const to = Math.max(from, Math.min(at + timeout, now) + margin);
  const settleUntil = to + Math.min(timeout, MAX_CLEANUP_SETTLE_SECONDS * 1000);
  const iso = (ms: number) => new Date(ms).toISOString();
  return { from: iso(from), to: iso(to), settleUntil: iso(settleUntil) };
}

/**
 * Everything a checkpoint was requested for: the agent may hold a record even without a result.
 * `completed`: the target pod runs from the checkpoint image(s) on the target node, which are
 * therefore kept there (rollback and cancellation remove them).
 */
export function artifactsOf(ctx: PhaseContext, opts: { completed?: boolean } = {}): ArtifactRef[] {
  const s = ctx.m.status ?? {};
  return (s.containers ?? [])
    .filter((c) => c.checkpointPath || c.checkpointImage || c.checkpointRequestedAt)
    .map((c) => {
      // A node-proxy checkpoint without a result: its archive (if any) is found by name and time.
      const window =
        c.checkpointVia === "NodeProxy" && !c.checkpointPath && c.checkpointRequestedAt
          ? archiveWindowOf(c.checkpointRequestedAt, ctx.deps.settings.checkpointTimeoutSeconds, ctx.now)
          : undefined;
      const image = c.checkpointImage ?? pushedImageOf(ctx, c.name, c.checkpointPath);
      return {
        mode: ctx.transport.name,
        sourceNode: s.sourceNode ?? "",
        namespace: ctx.namespace,
        pod: ctx.m.spec.sourcePod,
        container: c.name,
        key: checkpointKey(uidOf(ctx.m), c.name),
        ...(s.targetNode ? { targetNode: s.targetNode } : {}),
        ...(c.checkpointPath ? { archivePath: c.checkpointPath } : {}),
        ...(window ? { archiveWindow: window } : {}),
        ...(image ? { image } : {}),
        ...(opts.completed ? { keepTargetImage: true } : {}),
      };
    });
}

/**
 * The registry image a Registry transfer of a checkpointed container may have pushed before its
 * result was recorded (a transfer Job that finished while the controller was down, a deadline or
 * a cancellation during the transfer): its name is fixed by the migration's UID and the
 * container, so the cleanup can name it. Deleting an image that was never pushed is a no-op.
 */
function pushedImageOf(ctx: PhaseContext, container: string, checkpointPath: string | undefined) {
  if (!checkpointPath || ctx.transport.name !== "Registry" || !ctx.m.spec.checkpointImageRepository)
    return undefined;
  // A transfer that ended in a definite refusal (the registry refused the push) made no image:
  // no cleanup Job for it. Unknown outcomes (a deadline, a cancellation, a controller that was
  // down while a transfer Job pushed) and later phases name it.
  const failure = ctx.m.status?.failure;
  if (failure?.phase === "Transferring" && failure.reason === "TransferFailed") return undefined;
  return ctx.transport.checkpointImage(ctx.m, container, checkpointTag(uidOf(ctx.m), container));
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
