// Transferring: each container's archive to where the target node's runtime reads it (the
// registry, or the target node's own agent), sent by the source node's agent or, where none runs,
// by a transfer Job (adapters/transfer-job.ts). Transfers are idempotent: re-entry repeats at most
// the one that was in flight, and a running Job is waited for.
import { isMs2mError } from "../../common/errors.ts";
import { next, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { checkIncarnation, workloadOf } from "../lifecycle/incarnation.ts";
import { checkpointKey, checkpointTag, uidOf } from "../names.ts";
import { encryptionKeys } from "../adapters/encryption.ts";
import { TransferInProgress } from "../adapters/transfer-job/jobs.ts";

/** Backstop re-check of a running transfer Job; its watch events normally come first. */
const JOB_POLL_MS = 5000;

export async function transferring(ctx: PhaseContext): Promise<Outcome> {
  const s = ctx.m.status ?? {};
  const mode = ctx.transport.name;
  const sourceNode = s.sourceNode ?? "";
  const targetNode = s.targetNode ?? "";
  const pending = (s.containers ?? []).filter((c) => !c.transferred);
  const missing = pending.find((c) => !c.checkpointPath);
  if (missing) return fail("CheckpointMissing", `container ${missing.name} has no checkpoint`);
  // Checkpointing's phase change (with its results) is written beside Direct transfers: they are
  // idempotent, a crash before it lands repeats Checkpointing (whose lookup() finds the
  // checkpoints), and a rollback finds what they loaded by the checkpoint's key. An image pushed
  // to a registry is named for its cleanup only from a recorded checkpoint (artifacts.ts): that
  // record is stored before a Registry transfer.
  if (ctx.transport.name === "Direct") ctx.storeBeside();
  else await ctx.flush();
  // Nothing leaves the node for a workload that was deleted and recreated since the checkpoint.
  if (pending.length > 0) await checkIncarnation(ctx);
  const workload = workloadOf(ctx.m);
  // The base images the restore stands on are brought to the target meanwhile.
  const bases = ensureBaseImages(ctx, targetNode).then(
    () => undefined,
    (err: unknown) => ({ err }),
  );
  // One archive per container, all sent side by side (a multi-container pod's transfers overlap).
  const outcomes = await Promise.allSettled(
    pending.map(async (c) => {
      const image = ctx.transport.checkpointImage(ctx.m, c.name, checkpointTag(uidOf(ctx.m), c.name));
      const encryption = await encryptionKeys(ctx.deps.cluster, ctx.namespace, ctx.m.spec.encryption);
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
        ...(encryption ? { encryption } : {}),
        ...(workload ? { workload } : {}),
      });
    }),
  );
  // Results ride with the next write: the phase change, or (a retry, a Job still running, a
  // failure) the write the reconciler makes before it waits or retries, so a retry repeats only
  // what did not finish. A crash before it repeats them all (transfers are idempotent).
  let running = 0;
  let retry: unknown;
  for (const [i, outcome] of outcomes.entries()) {
    const name = pending[i]!.name;
    if (outcome.status === "fulfilled") {
      const result = outcome.value;
      ctx.defer((m) => {
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
  const baseFailure = await bases;
  if (baseFailure) throw baseFailure.err;
  if (retry !== undefined) throw retry; // retried with backoff until the phase deadline
  if (running > 0) return { type: "wait", afterMs: JOB_POLL_MS };
  // Written beside Restoring's first reads and the target's creation (restoring.ts).
  await ctx.advance(undefined, undefined, { lazy: true });
  return next();
}

/**
 * CRI-O restores a checkpoint on top of the image the container ran from, by image ID, and does
 * not pull it: each base image is made present on the target node (by digest) before Restoring.
 * Idempotent and cheap when the image is there. A registry that refuses the pull fails the
 * migration with what to do; other errors are retried until the phase deadline.
 */
async function ensureBaseImages(ctx: PhaseContext, targetNode: string): Promise<void> {
  const port = ctx.deps.baseImages;
  if (!port) return;
  const images = [
    ...new Set((ctx.m.status?.containers ?? []).flatMap((c) => (c.baseImage ? [c.baseImage] : []))),
  ];
  const results = await Promise.allSettled(
    images.map((image) => port.ensure(targetNode, uidOf(ctx.m), image)),
  );
  for (const [i, r] of results.entries()) {
    if (r.status === "fulfilled") {
      if (!r.value.present) {
        ctx.event(
          "Normal",
          "BaseImagePulled",
          `${images[i]} pulled on ${targetNode} in ${r.value.pullSeconds.toFixed(1)} s (the restore needs it)`,
        );
      }
      continue;
    }
    const err: unknown = r.reason;
    if (isMs2mError(err) && !err.retriable) {
      return fail(
        "BaseImageUnavailable",
        `base image ${images[i]} cannot be brought to ${targetNode}: ${err.message}. Pre-pull it on ` +
          "the node or give the agent credentials for its registry (AGENT_REGISTRY_CREDENTIALS_FILE)",
        err,
      );
    }
    throw err;
  }
}
