// Names, labels and annotations ms2m puts on objects. Derived from the migration's UID so that a
// restarted controller computes the same names and finds what it created before.
import type { StatefulMigration } from "../api/v1alpha1/index.ts";

export const FINALIZER = "migration.ms2m.io/finalizer";
/** Holds a Sequential source pod's name until the target is created under it. */
export const HANDOVER_FINALIZER = "migration.ms2m.io/handover";

export const LABEL_MIGRATION = "migration.ms2m.io/migration";
export const LABEL_ROLE = "migration.ms2m.io/role";
/** The migration's UID: an annotation on target pods, a label on transfer and cleanup Jobs. */
export const KEY_MIGRATION_UID = "migration.ms2m.io/migration-uid";
/** JSON of the labels held back from a pod so it does not match its workload's selector yet. */
export const ANNOTATION_HELD_LABELS = "migration.ms2m.io/held-labels";
/** Read by the ReplicaSet controller when it picks a pod to delete (lower goes first). */
export const ANNOTATION_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost";
export const MIN_DELETION_COST = "-2147483648";

export const CONTROLLER_NAME = "statefulmigration";

export function uidOf(m: StatefulMigration): string {
  const uid = m.metadata.uid;
  if (!uid) throw new Error("migration has no uid");
  return uid;
}

/** Idempotency key for one container's checkpoint in one migration. */
export const checkpointKey = (migrationUid: string, container: string) => `${migrationUid}/${container}`;

/** Tag of the checkpoint image: unique per migration and container. */
export const checkpointTag = (migrationUid: string, container: string) =>
  `${container}-${migrationUid.replaceAll("-", "").slice(0, 12)}`;
