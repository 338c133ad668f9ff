// Target side, shared by receive and pull: the local image name, the record of what is loaded
// (so the release finds it), and the load into containers-storage with its verification.
import { Ms2mError } from "../../common/errors.ts";
import { parseImageReference, type ImageReference } from "../../checkpoint/image.ts";
import { loadLayoutIntoStorage, storedManifest } from "../../checkpoint/skopeo.ts";
import type { AgentContext } from "../context.ts";

/** The target image of a load: only `localhost/<repo>:<tag>`. */
export function localImage(image: string): ImageReference {
  const ref = parseImageReference(image);
  if (ref.host !== "localhost")
    throw new Ms2mError("BadRequest", "target image must be named localhost/<repo>:<tag>");
  return ref;
}

/** Recorded before the load, so the release finds every image this agent loaded. */
export function recordLoaded(
  ctx: AgentContext,
  migration: string,
  container: string,
  image: string,
  via: "receive" | "pull",
  workloadUid?: string,
): Promise<void> {
  return ctx.records.putLoaded({
    migration,
    container,
    image,
    via,
    createdAt: new Date().toISOString(),
    ...(workloadUid ? { workloadUid } : {}),
  });
}

/** Loads the OCI layout `dir:tag` as `image` and checks the store holds exactly that layer; seconds taken. */
export async function loadAndVerify(
  ctx: AgentContext,
  dir: string,
  tag: string,
  image: string,
  digest: string,
  size: number,
): Promise<number> {
  const started = performance.now();
  const opts = { binary: ctx.config.AGENT_SKOPEO, signal: ctx.signal };
  await loadLayoutIntoStorage(dir, tag, ctx.store, image, opts);
  const manifest = (await storedManifest(ctx.store, image, opts)) as {
    layers?: { digest?: string }[];
  } | null;
  if (manifest?.layers?.length !== 1 || manifest.layers[0]?.digest !== digest) {
    throw new Ms2mError("InternalError", "loaded image does not carry the received layer");
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.metrics.loadDuration.observe(seconds);
  ctx.metrics.loadBytes.inc(size);
  return seconds;
}
