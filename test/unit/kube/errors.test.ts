import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { isAlreadyExists, isNotFound, toMs2mError } from "../../../src/kube/errors.ts";

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
