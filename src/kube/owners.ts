import type { V1OwnerReference } from "@kubernetes/client-node";

interface Owned {
  metadata?: { ownerReferences?: V1OwnerReference[] | Record<string, unknown>[] };
}
interface Ownable {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string };
}

/** An owner reference to `owner` (controller + blockOwnerDeletion by default, as a controller does). */
export function ownerReference(
  owner: Ownable,
  opts: { controller?: boolean; block?: boolean } = {},
): V1OwnerReference {
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) throw new Error("owner needs apiVersion, kind, name and uid");
  return {
    apiVersion,
    kind,
    name,
    uid,
    controller: opts.controller ?? true,
    blockOwnerDeletion: opts.block ?? true,
  };
}

export function ownerReferences(obj: Owned): V1OwnerReference[] {
  return (obj.metadata?.ownerReferences ?? []) as V1OwnerReference[];
}

/** The controller owner reference, if any (at most one exists). */
export function controllerOf(obj: Owned): V1OwnerReference | undefined {
  return ownerReferences(obj).find((r) => r.controller === true);
}

export function isOwnedBy(obj: Owned, uid: string): boolean {
  return ownerReferences(obj).some((r) => r.uid === uid);
}
