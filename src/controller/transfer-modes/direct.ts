// Direct: the source node's agent sends the archive to the target node's agent, which loads it
// into that node's containers-storage. Fastest, nothing stored elsewhere; the image exists only
// on that node.
import type { Transport } from "./types.ts";

export const direct: Transport = {
  name: "Direct",
  checkpointImage: (m, _container, tag) =>
    `localhost/ms2m-checkpoint/${m.metadata.namespace ?? "default"}-${m.spec.sourcePod}:${tag}`,
  imageOnTargetNodeOnly: true,
  needsTargetAgent: true,
};
