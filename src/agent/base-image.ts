// `POST /v1/images {migration, image}`: makes a checkpointed container's base image present in
// this node's containers-storage before the restore. CRI-O restores a checkpoint on top of the
// image the container ran from, looked up by image ID (config.dump's rootfsImageRef), and does
// not pull it: without it the restore fails with "image not known" (seen on real nodes). The
// controller names the image by digest (the source pod's containerStatuses[].imageID), so what
// is pulled is exactly that image, never whatever a tag points to now.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Ms2mError } from "../common/errors.ts";
import type { RegistryOptions } from "../checkpoint/registry.ts";
import { runSkopeo, storageReference, storedManifest, type StorageConfig } from "../checkpoint/skopeo.ts";
import type { BaseImageRequest, BaseImageResponse } from "../transfer/types.ts";

/** host[:port]/path@sha256:<64 hex>: only digest references (a tag may have moved since). */
const DIGEST_REF = /^([a-z0-9.-]+(?::[0-9]{1,5})?)\/[a-z0-9._/-]+@sha256:[a-f0-9]{64}$/;

export interface BaseImageDeps {
  store: StorageConfig;
  registry: RegistryOptions;
  signal?: AbortSignal;
}

/** Present already: nothing to do. Otherwise pulled from its registry with skopeo. */
export async function ensureBaseImage(
  req: BaseImageRequest,
  deps: BaseImageDeps,
): Promise<BaseImageResponse> {
  const match = DIGEST_REF.exec(req.image);
  if (!match) {
    throw new Ms2mError(
      "BadRequest",
      `base image must be a digest reference (host/repo@sha256:…): ${req.image}`,
    );
  }
  const host = match[1]!;
  const started = performance.now();
  const opts = deps.signal ? { signal: deps.signal } : {};
  if ((await storedManifest(deps.store, req.image, opts)) !== null) {
    return { image: req.image, present: true, pullSeconds: 0 };
  }
  const args = ["copy", "--quiet"];
  if (deps.registry.insecureHosts?.includes(host)) args.push("--src-tls-verify=false");
  const creds = typeof deps.registry.auth === "function" ? deps.registry.auth(host) : deps.registry.auth;
  // Credentials go through a private auth file, never the command line (other processes see that).
  const authDir = creds ? await mkdtemp(join(tmpdir(), "ms2m-auth-")) : undefined;
  try {
    if (authDir && creds) {
      const auth = Buffer.from(`${creds.username}:${creds.password}`).toString("base64");
      await writeFile(join(authDir, "auth.json"), JSON.stringify({ auths: { [host]: { auth } } }), {
        mode: 0o600,
      });
      args.push("--src-authfile", join(authDir, "auth.json"));
    }
    args.push(`docker://${req.image}`, storageReference(deps.store, req.image));
    await runSkopeo(args, opts).catch((err: unknown) => {
      // The registry said no: retrying the same pull cannot succeed.
      const message = err instanceof Error ? err.message : String(err);
      if (
        /unauthorized|authentication required|denied|manifest unknown|name unknown|not found/i.test(message)
      ) {
        throw new Ms2mError("Forbidden", `registry refused ${req.image}: ${message}`, {
          cause: err,
          retriable: false,
        });
      }
      throw err;
    });
  } finally {
    if (authDir) await rm(authDir, { recursive: true, force: true });
  }
  return { image: req.image, present: false, pullSeconds: (performance.now() - started) / 1000 };
}
