import type { StatefulMigration, TransferMode } from "../../api/v1alpha1/index.ts";

/**
 * A transfer mode (spec.transferMode) as an object: how a checkpoint travels to the target node
 * and what that means for the target pod, the preflight and a roll-forward. Resolved once in
 * Pending (status.transferMode); adding a mode means adding one file in this folder.
 */
export interface Transport {
  readonly name: TransferMode;
  /** The image a container's checkpoint becomes: what the target pod's container runs. */
  checkpointImage(m: StatefulMigration, container: string, tag: string): string;
  /**
   * The checkpoint image exists only on the target node (loaded there, never pulled): the target
   * pod must not pull it, and the restore cannot move to another node.
   */
  readonly imageOnTargetNodeOnly: boolean;
  /** The target node's agent receives the checkpoint: the preflight needs it Ready there. */
  readonly needsTargetAgent: boolean;
}
