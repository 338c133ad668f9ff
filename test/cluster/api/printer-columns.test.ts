import { beforeAll, expect, it } from "vitest";
import { stringify } from "yaml";
import { clusterContext } from "../../harness/context.ts";
import { installCrd, mustSucceed } from "../../../tooling/stack/manifests.ts";

const { kubectl } = clusterContext();
const ns = "api-printer";

beforeAll(async () => {
  await installCrd(kubectl);
  await kubectl(["create", "namespace", ns]);
});

it("`kubectl get smig` prints phase, strategy, mode, source, target, duration and age", async () => {
  const obj = {
    apiVersion: "migration.ms2m.io/v1alpha1",
    kind: "StatefulMigration",
    metadata: { name: "orders-to-b", namespace: ns },
    spec: { sourcePod: "consumer-0", transferMode: "Direct" },
  };
  mustSucceed(await kubectl(["apply", "-f", "-"], stringify(obj)), "create");
  const status = {
    phase: "Replaying",
    strategy: "ShadowPod",
    transferMode: "Direct",
    targetNode: "node-b",
    duration: "4.212s",
  };
  mustSucceed(
    await kubectl([
      "patch",
      "smig",
      "orders-to-b",
      "-n",
      ns,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status }),
    ]),
    "status",
  );
  const out = mustSucceed(await kubectl(["get", "smig", "-n", ns]), "get");
  const [header, row] = out.trim().split("\n");
  expect(header?.split(/\s+/)).toEqual([
    "NAME",
    "PHASE",
    "STRATEGY",
    "MODE",
    "SOURCE",
    "TARGET",
    "DURATION",
    "AGE",
  ]);
  const cells = row!.split(/\s+/);
  expect(cells.slice(0, 7)).toEqual([
    "orders-to-b",
    "Replaying",
    "ShadowPod",
    "Direct",
    "consumer-0",
    "node-b",
    "4.212s",
  ]);
  expect(cells[7]).toMatch(/^\d+s$/);
});
