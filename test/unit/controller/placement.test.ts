import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { MigrationFailure } from "../../../src/controller/failures.ts";
import { chooseTargetNode, judgeNode, podRequests } from "../../../src/controller/placement.ts";
import { PhaseContext } from "../../../src/controller/context.ts";
import { transportFor } from "../../../src/controller/transfer-modes/index.ts";
import { makeWorld, readyNode } from "./fakes.ts";

const node = (
  name: string,
  extra: { cpu?: string; memory?: string; labels?: Record<string, string> } & Partial<V1Node["spec"]> = {},
): V1Node => {
  const { cpu = "4", memory = "8Gi", labels = {}, ...spec } = extra;
  const n = readyNode(name);
  n.metadata!.labels = { ...n.metadata!.labels, ...labels };
  n.status!.allocatable = { cpu, memory };
  n.spec = spec;
  return n;
};
const pod = (spec: Partial<V1Pod["spec"]> = {}, requests = { cpu: "500m", memory: "1Gi" }): V1Pod => ({
  metadata: { name: "app-0", namespace: "default" },
  spec: { containers: [{ name: "app", image: "app:1", resources: { requests } }], ...spec },
});

describe("podRequests", () => {
  it("sums containers, takes the largest init container, adds overhead", () => {
    const p = pod({
      containers: [
        { name: "a", resources: { requests: { cpu: "250m", memory: "100Mi" } } },
        { name: "b", resources: { requests: { cpu: "250m", memory: "100Mi" } } },
      ],
      initContainers: [{ name: "i", resources: { requests: { cpu: "2", memory: "10Mi" } } }],
      overhead: { cpu: "100m" },
    });
    expect(podRequests(p).cpu).toBeCloseTo(2.1);
    expect(podRequests(p).memory).toBe(200 * 2 ** 20);
  });
});

describe("judgeNode", () => {
  const opts = { sourceNode: "node-a" };
  it.each<[string, V1Node, V1Pod, string | undefined]>([
    ["the source", node("node-a"), pod(), "the source node"],
    ["cordoned", node("node-b", { unschedulable: true }), pod(), "cordoned (unschedulable)"],
    [
      "a taint the pod does not tolerate",
      node("node-b", { taints: [{ key: "gpu", value: "yes", effect: "NoSchedule" }] }),
      pod(),
      "has taint gpu:NoSchedule the pod does not tolerate",
    ],
    [
      "a tolerated taint",
      node("node-b", { taints: [{ key: "gpu", value: "yes", effect: "NoSchedule" }] }),
      pod({ tolerations: [{ key: "gpu", operator: "Equal", value: "yes", effect: "NoSchedule" }] }),
      undefined,
    ],
    [
      "the pod's nodeSelector",
      node("node-b"),
      pod({ nodeSelector: { disk: "ssd" } }),
      "lacks label disk=ssd required by the pod's nodeSelector",
    ],
    [
      "too little cpu",
      node("node-b", { cpu: "400m" }),
      pod(),
      "insufficient cpu (0.4 CPU free, 0.5 CPU requested)",
    ],
  ])("%s", (_what, n, p, rejected) => {
    expect(judgeNode(p, n, [], opts).rejected).toBe(rejected);
  });

  it("counts what already runs on the node, not finished pods", () => {
    const running = pod({}, { cpu: "3", memory: "1Gi" });
    const done = { ...pod({}, { cpu: "3", memory: "1Gi" }), status: { phase: "Succeeded" } };
    expect(judgeNode(pod(), node("node-b"), [running, done], opts).rejected).toBeUndefined();
    expect(judgeNode(pod(), node("node-b"), [running, running], opts).rejected).toMatch(/insufficient cpu/);
  });

  it("applies the migration's targetNodeSelector", () => {
    expect(judgeNode(pod(), node("node-b"), [], { ...opts, selector: { zone: "b" } }).rejected).toBe(
      "lacks label zone=b (targetNodeSelector)",
    );
    expect(
      judgeNode(pod(), node("node-b", { labels: { zone: "b" } }), [], { ...opts, selector: { zone: "b" } })
        .rejected,
    ).toBeUndefined();
  });
});

describe("chooseTargetNode", () => {
  function ctxWith(nodes: V1Node[]) {
    const w = makeWorld();
    for (const n of nodes) w.cluster.nodes.set(n.metadata!.name!, n);
    w.cluster.addMigration("mig", { sourcePod: "app-0", transferMode: "Direct" });
    return { w, ctx: new PhaseContext(w.cluster.migration("mig"), w.deps) };
  }

  it("takes the node with the most room, skips cordoned ones and those whose runtime cannot restore, and says why", async () => {
    const { w, ctx } = ctxWith([
      node("node-a"),
      node("node-b", { unschedulable: true }),
      node("node-c", { cpu: "2", memory: "4Gi" }),
      node("node-d", { cpu: "8", memory: "16Gi" }),
      node("node-e", { cpu: "16", memory: "32Gi" }),
    ]);
    w.runtime.answers.set("node-e", {
      state: "reported",
      report: {
        runtime: "cri-o",
        checkpoint: false,
        restore: false,
        source: "/etc/crio/crio.conf",
        detail: "enable_criu_support = false",
      },
    });
    const got = await chooseTargetNode(ctx, pod(), {
      sourceNode: "node-a",
      transport: transportFor("Direct"),
    });
    expect(got.node.metadata?.name).toBe("node-d");
    expect(got.reason).toMatch(
      /^node-d: fits, 7\.5 CPU and 15\.0 GiB left after the pod; also fitting: node-c \(less room\)/,
    );
    expect(got.reason).toContain("not node-b: cordoned (unschedulable)");
    expect(got.reason).toContain("not node-e: its runtime cannot restore (enable_criu_support = false)");
    // Only nodes that fit otherwise were asked about their runtime.
    expect(w.runtime.probes.map((p) => p.node).sort()).toEqual(["node-c", "node-d", "node-e"]);
  });

  it("fails with every node's reason when none fits", async () => {
    const { ctx } = ctxWith([
      node("node-a"),
      node("node-b", { unschedulable: true }),
      node("node-c", { cpu: "100m" }),
    ]);
    const err = await chooseTargetNode(ctx, pod(), {
      sourceNode: "node-a",
      transport: transportFor("Registry"),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFailure);
    expect((err as MigrationFailure).reason).toBe("NoTargetNode");
    expect((err as MigrationFailure).message).toBe(
      "no node can take pod app-0: node-b: cordoned (unschedulable); node-c: insufficient cpu (0.1 CPU free, 0.5 CPU requested)",
    );
  });
});
