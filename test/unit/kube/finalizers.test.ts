import { describe, expect, it } from "vitest";
import { addFinalizerPatch, removeFinalizerPatch } from "../../../src/kube/finalizers.ts";

describe("finalizers", () => {
  it("adds guarded by resourceVersion, removes by index with a test", () => {
    expect(addFinalizerPatch({ metadata: { resourceVersion: "7" } }, "f")).toEqual([
      { op: "test", path: "/metadata/resourceVersion", value: "7" },
      { op: "add", path: "/metadata/finalizers", value: ["f"] },
    ]);
    expect(addFinalizerPatch({ metadata: { finalizers: ["f"] } }, "f")).toBeUndefined();
    expect(removeFinalizerPatch({ metadata: { finalizers: ["a", "f"] } }, "f")).toEqual([
      { op: "test", path: "/metadata/finalizers/1", value: "f" },
      { op: "remove", path: "/metadata/finalizers/1" },
    ]);
  });
});
