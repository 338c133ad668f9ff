import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { Ms2mError } from "../../../src/common/errors.ts";
import { RetryAfter } from "../../../src/controller/reconciler.ts";
import type { RuntimeProbe } from "../../../src/controller/ports.ts";
import type { RuntimeReport, RuntimeSetting } from "../../../src/transfer/types.ts";
import { drive, setup } from "./scenario.ts";

const DROP_IN = "/etc/crio/crio.conf.d/10-crio.conf";
const statusOf = (w: ReturnType<typeof setup>) => w.cluster.migration("mig").status!;
const runtimeReady = (w: ReturnType<typeof setup>) =>
  statusOf(w).conditions?.find((c) => c.type === "RuntimeReady");

/** A node reporting CRI-O 1.36.1, as Node.status.nodeInfo has it. */
function crioNode(w: ReturnType<typeof setup>, name: string, version = "cri-o://1.36.1"): void {
  const node = w.cluster.nodes.get(name)!;
  node.status = { ...node.status, nodeInfo: { containerRuntimeVersion: version } as never };
}

function crioReport(settings: Record<string, RuntimeSetting>): RuntimeProbe {
  return {
    state: "reported",
    report: { runtime: "cri-o", source: DROP_IN, detail: "(agent's own words)", settings },
  };
}
const criu = (value: boolean): Record<string, RuntimeSetting> => ({
  enable_criu_support: { value, file: DROP_IN, table: "[crio.runtime]" },
});

/** Nothing was frozen or made: no checkpoint, no replay queue, no target pod, source as it was. */
function nothingFrozen(w: ReturnType<typeof setup>, source: V1Pod): void {
  expect(w.checkpointer.faults.count("checkpoint")).toBe(0);
  expect(w.checkpointer.requests).toHaveLength(0);
  expect(w.messaging.faults.count("prepareReplay")).toBe(0);
  expect(w.transfer.requests).toHaveLength(0);
  expect([...w.cluster.pods.keys()]).toEqual([`default/${source.metadata!.name}`]);
  const now = w.cluster.pod(source.metadata!.name!)!;
  expect(now.metadata?.labels).toEqual(source.metadata?.labels);
  expect(now.metadata?.annotations).toEqual(source.metadata?.annotations);
  expect(now.metadata?.ownerReferences).toEqual(source.metadata?.ownerReferences);
  expect(now.metadata?.deletionTimestamp).toBeUndefined();
}

describe("Pending: runtime preflight", () => {
  it("fails in Pending when the target's runtime cannot restore, saying what to set where", async () => {
    const w = setup("Deployment");
    crioNode(w, "node-a");
    crioNode(w, "node-b");
    w.runtime.answers.set("node-b", crioReport(criu(false)));
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    const message =
      `target node node-b (cri-o://1.36.1) cannot restore checkpoints: enable_criu_support = false in ` +
      `[crio.runtime] (${DROP_IN}). To fix it, set enable_criu_support = true in [crio.runtime] ` +
      `(${DROP_IN}), then restart CRI-O`;
    expect(s.failure).toEqual({ phase: "Pending", reason: "TargetRuntimeCannotRestore", message });
    expect(runtimeReady(w)).toMatchObject({ status: "False", reason: "TargetRuntimeCannotRestore", message });
    expect(s.targetNode).toBe("node-b");
    expect(s.sourceNode).toBe("node-a");
    expect(s.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
    expect(w.events.events).toContainEqual({
      type: "Warning",
      reason: "TargetRuntimeCannotRestore",
      message: `Pending: ${message}`,
    });
    nothingFrozen(w, w.source);
  });

  it("fails in Pending when the source's runtime cannot checkpoint", async () => {
    const w = setup("StatefulSet");
    crioNode(w, "node-a");
    crioNode(w, "node-b");
    w.runtime.answers.set("node-a", crioReport(criu(false)));
    await drive(w);
    const s = statusOf(w);
    expect(s.failure).toMatchObject({ phase: "Pending", reason: "SourceRuntimeCannotCheckpoint" });
    expect(s.failure?.message).toBe(
      `source node node-a (cri-o://1.36.1) cannot checkpoint containers: enable_criu_support = false in ` +
        `[crio.runtime] (${DROP_IN}). To fix it, set enable_criu_support = true in [crio.runtime] ` +
        `(${DROP_IN}), then restart CRI-O`,
    );
    nothingFrozen(w, w.source);
  });

  it("names both nodes when neither runtime can do its part", async () => {
    const w = setup("Bare");
    w.runtime.answers.set("node-a", crioReport(criu(false)));
    w.runtime.answers.set("node-b", {
      state: "reported",
      report: {
        runtime: "containerd",
        source: "/etc/containerd/config.toml",
        detail: "",
        settings: { version: { value: 3, file: "/etc/containerd/config.toml", table: "" } },
      },
    });
    crioNode(w, "node-b", "containerd://2.3.4");
    await drive(w);
    const s = statusOf(w);
    expect(s.failure?.reason).toBe("SourceRuntimeCannotCheckpoint");
    expect(s.failure?.message).toContain(
      "source node node-a (runtime version not reported) cannot checkpoint",
    );
    expect(s.failure?.message).toContain(
      "; target node node-b (containerd://2.3.4) cannot restore checkpoints: enable_experimental_restore_via_create is not set: " +
        "containerd://2.3.4 does not restore without it. To fix it, set enable_experimental_restore_via_create = true in " +
        '[plugins."io.containerd.cri.v1.runtime"] (/etc/containerd/config.toml), then restart containerd',
    );
    nothingFrozen(w, w.source);
  });

  it("proceeds when both runtimes can, and records it in RuntimeReady", async () => {
    const w = setup("Deployment");
    crioNode(w, "node-a");
    crioNode(w, "node-b");
    w.runtime.answers.set("node-a", crioReport(criu(true)));
    w.runtime.answers.set("node-b", crioReport(criu(true)));
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(runtimeReady(w)).toMatchObject({
      status: "True",
      reason: "CheckpointRestoreEnabled",
      message: expect.stringContaining("target node node-b (cri-o://1.36.1) can restore checkpoints"),
    });
    expect(w.events.reasons()).not.toContain("RuntimeCheckSkipped");
    // The agent was told which runtime the node reports; one probe per node.
    expect(w.runtime.probes).toEqual([
      { node: "node-a", runtime: "cri-o", agentRequired: true },
      { node: "node-b", runtime: "cri-o", agentRequired: false },
    ]);
  });

  it("does not block on what cannot be told: an Event says the check was skipped and why", async () => {
    const w = setup("Deployment");
    // A CRI-O release that may have [crio.checkpoint_restore] without it set: restore unknown.
    crioNode(w, "node-b", "cri-o://1.37.0");
    w.runtime.answers.set("node-b", crioReport(criu(true)));
    w.runtime.answers.set("node-a", {
      state: "skipped",
      why: "no ms2m-agent runs on node node-a",
      expected: true,
    });
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(runtimeReady(w)).toMatchObject({ status: "Unknown", reason: "RuntimeCheckSkipped" });
    const skipped = w.events.events.filter((e) => e.reason === "RuntimeCheckSkipped");
    expect(skipped).toEqual([
      {
        type: "Normal",
        reason: "RuntimeCheckSkipped",
        message:
          "source node node-a (runtime version not reported): runtime check skipped: no ms2m-agent runs on node node-a",
      },
      {
        type: "Warning",
        reason: "RuntimeCheckSkipped",
        message: expect.stringMatching(
          /^target node node-b \(cri-o:\/\/1\.37\.0\): whether it can restore checkpoints is not known: .*To be sure, set container_level_enabled = "checkpoint_restore"/,
        ),
      },
    ]);
    expect(w.checkpointer.requests).toHaveLength(1);
  });

  it("a report without settings (unknown runtime) is taken as it stands", async () => {
    const w = setup("Deployment");
    const unknown: RuntimeReport = {
      runtime: "unknown",
      source: "",
      detail: "no CRI-O and no containerd configuration",
    };
    w.runtime.answers.set("node-b", { state: "reported", report: unknown });
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.events.events.find((e) => e.reason === "RuntimeCheckSkipped")?.message).toBe(
      "target node node-b (runtime version not reported): whether it can restore checkpoints is not known: no CRI-O and no containerd configuration",
    );
  });

  it("an agent that must be there but cannot be reached is retried until Pending's deadline, freezing nothing", async () => {
    const w = setup("Deployment", { transferMode: "Direct" });
    w.runtime.faults.inject(
      "probe",
      ...Array.from({ length: 50 }, () => new Ms2mError("ServiceUnavailable", "agent down")),
    );
    const r = await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(RetryAfter);
    expect(statusOf(w).phase).toBe("Pending");
    w.clock.advance(w.deps.settings.phaseTimeoutMs.Pending + 1);
    await drive(w, { kubelet: false });
    expect(statusOf(w).failure).toMatchObject({ phase: "Pending", reason: "PendingTimeout" });
    nothingFrozen(w, w.source);
    // Direct: the target's agent is needed anyway.
    expect(w.runtime.probes.find((p) => p.node === "node-b")?.agentRequired).toBe(true);
  });
});
