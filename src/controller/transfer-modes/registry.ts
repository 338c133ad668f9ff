// Registry: the source node's agent pushes the checkpoint image to
// spec.checkpointImageRepository; the target node's runtime pulls it like any image, so the
// restore can also happen on another node if the target is lost.
//
// With spec.encryption the registry holds only ciphertext, which the target node's runtime cannot
// pull into a restorable image: the target node's agent pulls it, decrypts it with the private
// key and loads it into that node's containers-storage. The image is then only on that node, as
// in Direct: the target pod never pulls it, the restore stays on that node, and the preflight
// needs the target's agent.
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import { fail } from "../failures.ts";
import type { Transport } from "./types.ts";

const checkpointImage = (m: StatefulMigration, _container: string, tag: string): string => {
  const repo = m.spec.checkpointImageRepository;
  return repo
    ? `${repo}:${tag}`
    : fail("CheckpointRepositoryMissing", "Registry mode needs checkpointImageRepository");
};

export const registry: Transport = {
  name: "Registry",
  checkpointImage,
  imageOnTargetNodeOnly: false,
  needsTargetAgent: false,
};

/** Registry with spec.encryption: decrypted and loaded on the target node by its agent. */
export const encryptedRegistry: Transport = {
  name: "Registry",
  checkpointImage,
  imageOnTargetNodeOnly: true,
  needsTargetAgent: true,
};
