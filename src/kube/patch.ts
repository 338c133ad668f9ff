// client-node 2.x sends every patch as JSON Patch unless told otherwise: these options set the
// Content-Type for the other patch flavours.
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";

export { PatchStrategy };

/** Field manager recorded in managedFields for everything ms2m writes. */
export const FIELD_MANAGER = "ms2m-controller";

export const mergePatchOptions = () => setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const strategicMergePatchOptions = () =>
  setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
export const jsonPatchOptions = () => setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
export const applyPatchOptions = () => setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

export interface JsonPatchOp {
  op: "add" | "remove" | "replace" | "test" | "move" | "copy";
  path: string;
  value?: unknown;
  from?: string;
}

/** Escapes one JSON Pointer segment (RFC 6901), e.g. a label key with a '/'. */
export const pointerSegment = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");

/** A JSON Patch `test` op that makes the patch fail with Conflict-like Invalid if the object changed. */
export const testResourceVersion = (resourceVersion: string): JsonPatchOp => ({
  op: "test",
  path: "/metadata/resourceVersion",
  value: resourceVersion,
});
