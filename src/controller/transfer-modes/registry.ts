// Registry: the source node's agent pushes the checkpoint image to
// spec.checkpointImageRepository; the target node's runtime pulls it like any image, so the
// restore can also happen on another node if the target is lost.
import { fail } from "../failures.ts";
import type { Transport } from "./types.ts";

export const registry: Transport = {
  name: "Registry",
  checkpointImage: (m, _container, tag) => {
    const repo = m.spec.checkpointImageRepository;
    return repo
      ? `${repo}:${tag}`
      : fail("CheckpointRepositoryMissing", "Registry mode needs checkpointImageRepository");
  },
  imageOnTargetNodeOnly: false,
  needsTargetAgent: false,
};
