// Transferring: each container's archive to where the target node's runtime reads it (the
// registry, or the target node's own agent), sent by the source node's agent or, where none runs,
// by a transfer Job (adapters/transfer-job.ts). Transfers are idempotent: re-entry repeats at most
// the one that was in flight, and a running Job is waited for.
import { isMs2mError } from "../../common/errors.ts";
import { next, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { checkpointKey, checkpointTag, directImageName, uidOf } from "../names.ts";
import { TransferInProgress } from "../transfer-job.ts";

/** Backstop re-check of a running transfer Job; its watch events normally come first. */
const JOB_POLL_MS = 5000;

export async function transferring(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const mode = s.transferMode ?? ctx.m.spec.transferMode;
  const sourceNode = s.sourceNode ?? "";
  const targetNode = s.targetNode ?? "";
  const pending = (s.containers ?? []).filter((c) => !c.transferred);
  const missing = pending.find((c) => !c.checkpointPath);
  if (missing) return fail("CheckpointMissing", `container ${missing.name} has no checkpoint`);
  // One archive per container, all sent side by side (a multi-container pod's transfers overlap).
  const outcomes = await Promise.allSettled(
    pending.map((c) => {
      const tag = checkpointTag(uidOf(ctx.m), c.name);
      const image =
        mode === "Registry"
          ? `${ctx.m.spec.checkpointImageRepository}:${tag}`
          : directImageName(ctx.namespace, ctx.m.spec.sourcePod, tag);
      return ctx.deps.transfer.transfer({
        mode,
        namespace: ctx.namespace,
        pod: ctx.m.spec.sourcePod,
        container: c.name,
        sourceNode,
        targetNode,
        archivePath: c.checkpointPath!,
        ...(c.checkpointDigest ? { digest: c.checkpointDigest } : {}),
        image,
        key: checkpointKey(uidOf(ctx.m), c.name),
      });
    }),
  );
  // Results are recorded first, so a retry repeats only what did not finish.
  let running = 0;
  let retry: unknown;
  for (const [i, outcome] of outcomes.entries()) {
    const name = pending[i]!.name;
    if (outcome.status === "fulfilled") {
      const result = outcome.value;
      await ctx.update((m) => {
        const x = m.status!.containers!.find((y) => y.name === name)!;
        x.checkpointImage = result.image;
        x.transferred = true;
        if (result.digest && !x.checkpointDigest) x.checkpointDigest = result.digest;
        if (result.bytes !== undefined && x.checkpointBytes === undefined) x.checkpointBytes = result.bytes;
      });
      continue;
    }
    const err: unknown = outcome.reason;
    if (err instanceof TransferInProgress) {
      // A transfer Job runs: its watch event brings us back (the poll is only a backstop).
      if (err.created)
        ctx.event("Normal", "TransferJobStarted", `${name}: Job ${err.job} sends from ${sourceNode}`);
      ctx.deps.log.debug({ migration: `${ctx.namespace}/${ctx.name}`, job: err.job }, err.message);
      running++;
    } else if (isMs2mError(err) && !err.retriable) {
      return fail("TransferFailed", `transfer of ${name} (${mode}): ${err.message}`, err);
    } else retry ??= err;
  }
  if (retry !== undefined) throw retry; // retried with backoff until the phase deadline
  if (running > 0) return { type: "wait", afterMs: JOB_POLL_MS };
  await ctx.transition("Restoring");
  return next();
}
