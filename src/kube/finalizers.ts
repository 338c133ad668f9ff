import { testResourceVersion, type JsonPatchOp } from "./patch.ts";

interface WithFinalizers {
  metadata?: { finalizers?: string[]; resourceVersion?: string };
}

export const hasFinalizer = (obj: WithFinalizers, finalizer: string) =>
  (obj.metadata?.finalizers ?? []).includes(finalizer);

/**
 * JSON Patch that adds a finalizer, guarded by the resourceVersion so a concurrent writer makes
 * it fail instead of silently dropping someone else's finalizer. Undefined when already present.
 */
export function addFinalizerPatch(obj: WithFinalizers, finalizer: string): JsonPatchOp[] | undefined {
  if (hasFinalizer(obj, finalizer)) return undefined;
  const guard = obj.metadata?.resourceVersion ? [testResourceVersion(obj.metadata.resourceVersion)] : [];
  const current = obj.metadata?.finalizers;
  return current === undefined || current.length === 0
    ? [...guard, { op: "add", path: "/metadata/finalizers", value: [finalizer] }]
    : [...guard, { op: "add", path: "/metadata/finalizers/-", value: finalizer }];
}

/** JSON Patch that removes a finalizer by index, guarded by a test of that entry. Undefined when absent. */
export function removeFinalizerPatch(obj: WithFinalizers, finalizer: string): JsonPatchOp[] | undefined {
  const index = (obj.metadata?.finalizers ?? []).indexOf(finalizer);
  if (index < 0) return undefined;
  return [
    { op: "test", path: `/metadata/finalizers/${index}`, value: finalizer },
    { op: "remove", path: `/metadata/finalizers/${index}` },
  ];
}
