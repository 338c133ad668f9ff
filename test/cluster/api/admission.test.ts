import { readdirSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { clusterContext } from "../../harness/context.ts";
import { installCrd, mustSucceed, repoPath } from "../../../tooling/stack/manifests.ts";
import { invalidCases } from "../../unit/api/v1alpha1/invalid-manifests.ts";

const { kubectl, kubeConfig } = clusterContext();
const ns = "api-admission";

const manifest = (name: string, spec: Record<string, unknown>) =>
  stringify({
    apiVersion: "migration.ms2m.io/v1alpha1",
    kind: "StatefulMigration",
    metadata: { name, namespace: ns },
    spec,
  });

beforeAll(async () => {
  await installCrd(kubectl);
  await kubectl(["create", "namespace", ns]);
});

describe("the StatefulMigration CRD on a real API server", () => {
  it("is Established with its names, short name and category", async () => {
    const crd = JSON.parse(
      mustSucceed(
        await kubectl(["get", "crd", "statefulmigrations.migration.ms2m.io", "-o", "json"]),
        "get crd",
      ),
    );
    expect(crd.status.acceptedNames.shortNames).toEqual(["smig"]);
    expect(crd.status.acceptedNames.categories).toEqual(["ms2m"]);
    expect(crd.status.conditions.find((c: { type: string }) => c.type === "Established").status).toBe("True");
    // kubectl resolves the short name and the category.
    expect((await kubectl(["get", "smig", "-n", ns])).code).toBe(0);
    expect((await kubectl(["get", "ms2m", "-n", ns])).code).toBe(0);
  });

  const samples = readdirSync(repoPath("config/samples")).filter((f) => f !== "kustomization.yaml");
  it.each(samples)("accepts sample %s in a server-side dry run and a real apply", async (file) => {
    const path = repoPath(`config/samples/${file}`);
    mustSucceed(await kubectl(["apply", "-n", ns, "--dry-run=server", "-f", path]), "dry run");
    mustSucceed(await kubectl(["apply", "-n", ns, "-f", path]), "apply");
    const obj = JSON.parse(mustSucceed(await kubectl(["get", "-n", ns, "-f", path, "-o", "json"]), "get"));
    expect(obj.spec.replayCutoffSeconds).toBeGreaterThan(0); // defaulted by the API server
    expect(obj.spec.transferMode).toMatch(/^(Registry|Direct)$/);
  });

  it.each(invalidCases.map((c) => [c.name, c] as const))(
    "rejects %s at admission, naming the field",
    async (_name, c) => {
      const res = await kubectl(
        ["apply", "--dry-run=server", "-f", "-"],
        manifest(c.metadataName ?? "invalid", c.spec),
      );
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain(c.field);
      expect(res.stderr.toLowerCase()).toContain(c.says.toLowerCase());
    },
  );

  it("rejects a change to the spec after creation, and says how to change it", async () => {
    const spec = { sourcePod: "consumer-0", transferMode: "Direct" };
    mustSucceed(await kubectl(["apply", "-f", "-"], manifest("immutable", spec)), "create");
    const res = await kubectl(["apply", "-f", "-"], manifest("immutable", { ...spec, targetNode: "node-b" }));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("spec is immutable");
    expect(res.stderr).toContain("delete the StatefulMigration");
    // Metadata (labels) may still change.
    mustSucceed(await kubectl(["label", "smig", "immutable", "-n", ns, "team=payments"]), "label");
  });

  it("accepts status written through the status subresource only", async () => {
    mustSucceed(
      await kubectl(
        ["apply", "-f", "-"],
        manifest("status-only", { sourcePod: "p", transferMode: "Direct" }),
      ),
      "create",
    );
    const kc = kubeConfig();
    expect(kc.getCurrentCluster()).toBeTruthy();
    const res = await kubectl([
      "patch",
      "smig",
      "status-only",
      "-n",
      ns,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { phase: "Checkpointing" } }),
    ]);
    mustSucceed(res, "patch status");
    const bad = await kubectl([
      "patch",
      "smig",
      "status-only",
      "-n",
      ns,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { phase: "Teleporting" } }),
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("status.phase");
  });
});
