import { describe, expect, it } from "vitest";
import type { Controller } from "../../../src/engine/controller.ts";
import {
  cachedMigration,
  WATCH_PATHS,
  watchedVersions,
  wholeFromWatch,
} from "../../../src/controller/setup.ts";

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

// A migration's first reconcile reads it from its watch while it has no status (the cache drops
// only managedFields and annotations then); the versions the watches saw back cached-reads.ts.
describe("wholeFromWatch, watchedVersions", () => {
  const fresh = {
    apiVersion: "migration.ms2m.io/v1alpha1",
    kind: "StatefulMigration",
    metadata: { name: "m", namespace: "ns", uid: "u", resourceVersion: "3" },
    spec: { sourcePod: "p" },
  };
  const controllerWith = (objects: Record<string, object>) =>
    ({
      cached: (path: string, ns: string, name: string) => objects[`${path}|${ns}/${name}`],
    }) as unknown as Controller;

  it("serves a migration without status, nothing else", () => {
    const c = controllerWith({ [`${WATCH_PATHS.StatefulMigration}|ns/m`]: fresh });
    expect(wholeFromWatch(() => c)("StatefulMigration", "ns", "m")).toBe(fresh);
    expect(wholeFromWatch(() => c)("Pod", "ns", "m")).toBeUndefined();
    const started = controllerWith({
      [`${WATCH_PATHS.StatefulMigration}|ns/m`]: { ...fresh, status: { phase: "Pending" } },
    });
    expect(wholeFromWatch(() => started)("StatefulMigration", "ns", "m")).toBeUndefined();
    expect(wholeFromWatch(() => undefined)("StatefulMigration", "ns", "m")).toBeUndefined();
  });

  it("reads the resourceVersion from the watch of the kind", () => {
    const c = controllerWith({
      [`${WATCH_PATHS.Pod}|ns/p`]: { metadata: { name: "p", resourceVersion: "7" } },
      [`${WATCH_PATHS.Node}|/n`]: { metadata: { name: "n", resourceVersion: "8" } },
    });
    const v = watchedVersions(() => c);
    expect(v("Pod", "ns", "p")).toBe("7");
    expect(v("Node", "", "n")).toBe("8");
    expect(v("ReplicaSet", "ns", "p")).toBeUndefined();
  });
});
