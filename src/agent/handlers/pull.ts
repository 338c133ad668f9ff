// `POST /v1/pull` (Registry mode, target side): fetches the checkpoint image a send pushed,
// streams its layer through the same checks as a receive, and loads it into this node's
// containers-storage (config and manifest are rebuilt locally, never trusted).
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Ms2mError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import { parseImageReference, type CheckpointOrigin } from "../../checkpoint/image.ts";
import { pullCheckpointImage } from "../../checkpoint/registry.ts";
import type { PullRequest, PullResponse } from "../../transfer/types.ts";
import type { AgentContext } from "../context.ts";
import { countFailures } from "../metrics.ts";
import { registryOptions } from "../send.ts";
import { loadAndVerify, localImage, recordLoaded } from "./load.ts";

export function pull(ctx: AgentContext, body: PullRequest, log: Logger): Promise<PullResponse> {
  return countFailures(ctx.metrics, "pull", () =>
    // A release of the migration waits for it.
    ctx.inflight.track(body.migration, () => pullAndLoad(ctx, body, log)),
  );
}

async function pullAndLoad(ctx: AgentContext, body: PullRequest, log: Logger): Promise<PullResponse> {
  // Decrypted images may keep their registry name (the kubelet then finds them present).
  const ref =
    body.decryption && body.image === body.source ? parseImageReference(body.image) : localImage(body.image);
  const dir = join(ctx.tmpDir, randomUUID());
  const started = performance.now();
  try {
    const got = await pullCheckpointImage(body.source, dir, ref.tag, {
      ...(await registryOptions(ctx.config)),
      maxBytes: ctx.config.AGENT_MAX_ARCHIVE_BYTES,
      expectedDigest: body.expectedDigest,
      decryptWith: body.decryption?.privateKeys,
      // Refused before a layer byte is fetched: another migration's image, or a checkpoint of
      // another incarnation of the workload.
      checkOrigin: (origin) => checkPulledOrigin(body, origin),
      signal: ctx.signal,
      onBytes: (n) => ctx.metrics.bytes.inc({ operation: "pull" }, n),
    });
    const pullSeconds = (performance.now() - started) / 1000;
    ctx.metrics.transferDuration.observe({ operation: "pull" }, pullSeconds);
    ctx.metrics.transferSize.observe({ operation: "pull" }, got.size);
    await recordLoaded(
      ctx,
      body.migration,
      got.containerName,
      body.image,
      "pull",
      got.origin.workloadUid ?? body.workload?.uid,
    );
    const loadSeconds = await loadAndVerify(ctx, dir, ref.tag, body.image, got.layerDigest, got.size);
    log.info(
      { image: body.image, digest: got.layerDigest, pullSeconds, loadSeconds, decrypted: !!body.decryption },
      "checkpoint image pulled",
    );
    return {
      image: body.image,
      digest: got.layerDigest,
      size: got.size,
      containerName: got.containerName,
      pullSeconds,
      loadSeconds,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A pull that names the workload (the controller's, since the lifecycle) does not load an image
 * whose annotations name another migration, or another UID of the workload (it was deleted and
 * recreated under the same name since the checkpoint). Images without the annotations (made by
 * an older agent) pass, and so do pulls that name no workload (tools and older controllers).
 */
export function checkPulledOrigin(body: PullRequest, origin: CheckpointOrigin): void {
  const want = body.workload;
  if (!want) return;
  if (origin.migrationUid && origin.migrationUid !== body.migration)
    throw new Ms2mError(
      "Forbidden",
      `checkpoint image ${body.source} belongs to migration ${origin.migrationUid}, not ${body.migration}`,
      { retriable: false },
    );
  if (origin.workloadUid && origin.workloadUid !== want.uid)
    throw new Ms2mError(
      "Forbidden",
      `checkpoint image ${body.source} is of another incarnation of ${want.kind} ${want.name} ` +
        `(uid ${origin.workloadUid}, now ${want.uid}): it was deleted and recreated since the checkpoint`,
      { retriable: false },
    );
}
