import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { MigrationPolicy, MigrationPolicySpec } from "../../../../src/api/v1alpha1/migrationpolicy.ts";

const repo = (rel: string) => new URL(`../../../../${rel}`, import.meta.url);

describe("MigrationPolicy schema", () => {
  it("parses the sample", () => {
    const obj = MigrationPolicy.parse(
      parse(readFileSync(repo("config/samples/migrationpolicy.yaml"), "utf8")),
    );
    expect(obj.spec.selector.matchLabels).toEqual({ tier: "consumer" });
    expect(obj.spec.maxConcurrentPerNode).toBe(2);
    expect(obj.spec.messageQueueConfig?.brokerSecretRef?.name).toBe("orders-broker");
  });

  it("applies the defaults the CRD declares", () => {
    const spec = MigrationPolicySpec.parse({
      selector: { matchLabels: { app: "a" } },
      checkpointImageRepository: "registry:5000/ms2m",
    });
    expect(spec.transferMode).toBe("Registry");
    expect(spec.replayCutoffSeconds).toBe(120);
    expect(spec.maxConcurrentPerNode).toBe(1);
  });

  it.each([
    ["an empty selector", { selector: {}, transferMode: "Direct" }, "selector must not be empty"],
    [
      "encryption with Direct",
      {
        selector: { matchLabels: { a: "b" } },
        transferMode: "Direct",
        encryption: {
          publicKeySecretRef: { name: "k", key: "pub" },
          privateKeySecretRef: { name: "k", key: "priv" },
        },
      },
      "encryption applies to transferMode Registry",
    ],
    [
      "Registry without a repository",
      { selector: { matchLabels: { a: "b" } } },
      "checkpointImageRepository is required",
    ],
    [
      "In without values",
      { selector: { matchExpressions: [{ key: "a", operator: "In" }] }, transferMode: "Direct" },
      "In and NotIn need values",
    ],
    [
      "maxConcurrentPerNode 0",
      { selector: { matchLabels: { a: "b" } }, transferMode: "Direct", maxConcurrentPerNode: 0 },
      "",
    ],
  ])("rejects %s with a message that says what to fix", (_name, spec, says) => {
    const res = MigrationPolicySpec.safeParse(spec);
    expect(res.success).toBe(false);
    if (!res.success) expect(res.error.issues.map((i) => i.message).join("; ")).toContain(says);
  });
});
