// Checkpointing: replay queue first (so every message published after the checkpoint is kept),
// then one checkpoint per container. The intent is written to status before each request; a
// controller that restarts with an intent but no result asks the agent what happened instead
// of checkpointing again.
import { isMs2mError } from "../../common/errors.ts";
import { next, type Outcome, type PhaseContext } from "../context.ts";
import { fail, MigrationFailure } from "../failures.ts";
import { workloadOf } from "../lifecycle/incarnation.ts";
import { checkpointKey, uidOf } from "../names.ts";
import type { CheckpointRequest, CheckpointResult } from "../ports.ts";
import { iso } from "../status.ts";
import { replayRef, requireSourcePod } from "./shared.ts";

export async function checkpointing(ctx: PhaseContext): Promise<Outcome> {
  const source = await requireSourcePod(ctx);
  const node = ctx.m.status?.sourceNode ?? source.spec?.nodeName ?? "";

  const ref = await replayRef(ctx);
  if (ref) {
    const pending = (ctx.m.status?.containers ?? []).some((c) => !c.checkpointPath);
    if (pending) {
      // Recorded with the checkpoint's intent (the next write, before the checkpoint); a crash
      // before it loses nothing: the rollback removes the migration's queues by its UID.
      if (!ctx.m.status?.replay?.replayQueue) {
        const { replayQueue } = await ctx.deps.messaging.prepareReplay(ref);
        ctx.defer((m) => {
          m.status!.replay = { ...m.status!.replay, replayQueue };
        });
      } else {
        await ctx.deps.messaging.prepareReplay(ref);
      }
    }
  }

  for (const name of (ctx.m.status?.containers ?? []).map((c) => c.name)) {
    const c = ctx.m.status?.containers?.find((x) => x.name === name);
    if (!c || c.checkpointPath) continue;
    const req: CheckpointRequest = {
      node,
      namespace: ctx.namespace,
      pod: ctx.m.spec.sourcePod,
      container: name,
      key: checkpointKey(uidOf(ctx.m), name),
      timeoutSeconds: ctx.deps.settings.checkpointTimeoutSeconds,
    };
    const workload = workloadOf(ctx.m);
    if (workload) req.workload = workload;
    let result: CheckpointResult | undefined;
    if (c.checkpointRequestedAt) {
      const found = await ctx.deps.checkpointer.lookup({ ...req, via: c.checkpointVia ?? "Agent" });
      if (found.state === "done") result = found.result;
      else if (found.state === "unknown") {
        return fail(
          "CheckpointOutcomeUnknown",
          `a checkpoint of ${name} was requested but its outcome cannot be determined; not checkpointing twice`,
        );
      }
    }
    if (!result) {
      // The route is recorded with the intent: a restarted controller looks up where it asked.
      const via = (await ctx.deps.checkpointer.routeFor?.(node)) ?? "Agent";
      const now = ctx.now;
      await ctx.update((m) => {
        const x = m.status!.containers!.find((y) => y.name === name)!;
        x.checkpointRequestedAt = iso(now);
        x.checkpointVia = via;
      });
      try {
        result = await ctx.deps.checkpointer.checkpoint({ ...req, via });
      } catch (err) {
        // A definite refusal (404: gate off, 500: runtime/CRIU failure) ends the migration; an
        // unknown outcome (timeout, connection lost) is retried through lookup().
        if (isMs2mError(err) && !err.retriable) {
          // The kubelet's 404 for a pod deleted meanwhile (with its StatefulSet, say) is no
          // checkpoint failure: the source is gone, and the failure says so (SourcePodLost).
          await requireSourcePod(ctx).catch((lost: unknown) => {
            if (lost instanceof MigrationFailure) throw lost;
          });
          return fail("CheckpointFailed", `checkpoint of ${name} on ${node}: ${err.message}`, err);
        }
        // Refused before anything was done (agent busy, 429): no checkpoint exists, so the
        // intent is withdrawn and the retry checkpoints normally.
        if (isMs2mError(err) && err.reason === "TooManyRequests") {
          await ctx.update((m) => {
            const x = m.status!.containers!.find((y) => y.name === name)!;
            delete x.checkpointRequestedAt;
            delete x.checkpointVia;
          });
        }
        throw err;
      }
    }
    const done = result;
    // Written with the next write (the next container's intent, or the phase change): a crash
    // before it finds the intent and asks lookup() for this result.
    ctx.defer((m) => {
      const x = m.status!.containers!.find((y) => y.name === name)!;
      x.checkpointPath = done.path;
      if (done.digest) x.checkpointDigest = done.digest;
      if (done.bytes !== undefined) x.checkpointBytes = done.bytes;
    });
    ctx.event("Normal", "Checkpointed", `container ${name} checkpointed on ${node}`);
  }

  // Written beside the transfers (transferring.ts).
  await ctx.advance(undefined, undefined, { lazy: true });
  return next();
}
