import { describe, expect, it } from "vitest";
import { cachedMigration } from "../../../src/controller/setup.ts";

// The StatefulMigration informer keeps what the watches' map functions and the resync read, not
// the bulky status fields or managedFields (the reconciler reads every migration live).
describe("cachedMigration", () => {
  const full = {
    apiVersion: "migration.ms2m.io/v1alpha1",
    kind: "StatefulMigration",
    metadata: {
      name: "m",
      namespace: "ns",
      uid: "u",
      resourceVersion: "9",
      labels: { a: "b" },
      finalizers: ["migration.ms2m.io/cleanup"],
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{...}" },
      managedFields: [{ manager: "ms2m-controller", fieldsV1: { "f:status": {} } }],
    },
    spec: { sourcePod: "p", targetNode: "node-b", transferMode: "Direct" },
    status: {
      phase: "Restoring",
      sourceNode: "node-a",
      targetNode: "node-b",
      targetPod: "p-ms2m-1",
      owner: { kind: "ReplicaSet", name: "rs", workloadKind: "Deployment", workloadName: "d" },
      conditions: [{ type: "RuntimeReady", status: "True" }],
      containers: [{ name: "c" }],
      phaseTimings: [{ phase: "Pending" }],
      sourcePodTemplate: "{...}",
      targetNodeReason: "most room",
      failure: { phase: "Pending", reason: "X", message: "y" },
    },
  };

  it("keeps metadata (but managedFields and annotations), spec and the status the maps read", () => {
    expect(cachedMigration(full as never)).toEqual({
      apiVersion: full.apiVersion,
      kind: full.kind,
      metadata: {
        name: "m",
        namespace: "ns",
        uid: "u",
        resourceVersion: "9",
        labels: { a: "b" },
        finalizers: ["migration.ms2m.io/cleanup"],
      },
      spec: full.spec,
      status: {
        phase: "Restoring",
        sourceNode: "node-a",
        targetNode: "node-b",
        targetPod: "p-ms2m-1",
        owner: full.status.owner,
        failure: full.status.failure,
      },
    });
  });

  it("leaves a migration without status without one", () => {
    const { status: _s, ...fresh } = full;
    expect(cachedMigration(fresh as never)).not.toHaveProperty("status");
  });
});
