import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { addFinalizerPatch, removeFinalizerPatch } from "../../../src/kube/finalizers.ts";
import { isAlreadyExists, isNotFound, toMs2mError } from "../../../src/kube/errors.ts";
import { selectorMatches, selectorString } from "../../../src/kube/selectors.ts";
import { updateWithConflictRetry } from "../../../src/kube/retry.ts";
import { Ms2mError } from "../../../src/common/errors.ts";

describe("errors", () => {
  it("maps an ApiException to the Status reason in its body", () => {
    const body = JSON.stringify({
      kind: "Status",
      reason: "AlreadyExists",
      message: 'pods "x" already exists',
      code: 409,
    });
    const e = toMs2mError(new ApiException(409, "conflict", body, {}), "create pod");
    expect(e.reason).toBe("AlreadyExists");
    expect(e.message).toBe('create pod: pods "x" already exists');
    expect(isAlreadyExists(new ApiException(409, "", body, {}))).toBe(true);
    expect(isNotFound(new ApiException(404, "", "not json", {}))).toBe(true);
    expect(toMs2mError(new Error("ECONNREFUSED")).retriable).toBe(true);
  });
});

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

describe("selectors", () => {
  it("evaluates matchLabels and matchExpressions like apimachinery", () => {
    const sel = {
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "tier", operator: "NotIn", values: ["db"] }],
    };
    expect(selectorMatches(sel, { app: "web" })).toBe(true);
    expect(selectorMatches(sel, { app: "web", tier: "db" })).toBe(false);
    expect(selectorMatches(undefined, { app: "web" })).toBe(false);
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorString(sel)).toBe("app=web,tier notin (db)");
  });
});

describe("updateWithConflictRetry", () => {
  it("re-reads and re-applies on Conflict", async () => {
    let stored = { v: 1, rv: 1 };
    let conflicts = 1;
    const out = await updateWithConflictRetry(
      async () => ({ ...stored }),
      (cur) => ({ ...cur, v: cur.v + 1 }),
      async (next) => {
        if (conflicts-- > 0) {
          stored = { v: 10, rv: 2 };
          throw new Ms2mError("Conflict", "modified");
        }
        stored = next;
        return next;
      },
    );
    expect(out.v).toBe(11);
  });
});
