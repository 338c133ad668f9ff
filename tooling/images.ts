// The project's images on a real-node cluster: built by `make images` (hack/images/images.ts:
// daemonless, from the Dockerfiles; a no-op when nothing changed) and pushed to the cluster's
// registry, from which the real nodes' CRI-O pulls them.
import { buildImages, pushImages } from "../hack/images/images.ts";
import type { ClusterImages } from "./cluster/nodes.ts";

/** Builds (if needed) and pushes the images; returns references pinned by digest. */
export async function pushProjectImages(registry: string): Promise<ClusterImages> {
  const manifest = await buildImages();
  const refs = await pushImages(registry, { manifest, pin: true });
  return { controller: refs.controller, agent: refs.agent, workload: refs.workload };
}
