import type { V1Pod } from "@kubernetes/client-node";
import type {
  MigrationStrategy,
  StatefulMigration,
  StatefulMigrationStatus,
} from "../../api/v1alpha1/index.ts";
import type { PhaseContext } from "../context.ts";

/**
 * A migration strategy (spec.migrationStrategy) as an object: how the target pod gets its name
 * and spec, and what happens to the source. Resolved once in Pending (status.strategy); adding a
 * strategy means adding one file in this folder.
 */
export interface Strategy {
  readonly name: MigrationStrategy;
  /** The target pod runs beside the source (which is deleted after the hand-over). */
  readonly runsBesideSource: boolean;
  /** The name of the pod the checkpoint is restored into. */
  targetPodName(m: StatefulMigration): string;
  /**
   * Before the target can be created under its name (`existing`: a pod already there that this
   * migration did not create). True when the name is free; false while waiting for it.
   */
  freeTargetName(ctx: PhaseContext, existing: V1Pod | undefined): Promise<boolean>;
  /** The pod spec the target is built from. */
  targetTemplate(ctx: PhaseContext): Promise<V1Pod>;
  /**
   * Creating the target found its name taken by someone else's pod. Returns to try again later
   * (the next pass frees the name), or fails the migration.
   */
  nameTaken(ctx: PhaseContext): void;
  /**
   * The source is gone for good and its state exists only in the checkpoint (the point of no
   * return of rollforward.ts): a failure then rolls forward instead of back.
   */
  sourceGone(status: StatefulMigrationStatus | undefined): boolean;
}
