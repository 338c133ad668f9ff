import type { V1Node, V1Pod, V1PodDisruptionBudget } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { MigrationPolicy, StatefulMigration } from "../../../../src/api/v1alpha1/index.ts";
import {
  decide,
  evictionMigrationName,
  LABEL_POLICY,
  LABEL_SOURCE_NODE,
  LABEL_TRIGGER,
  type EvictionClusterPort,
} from "../../../../src/controller/eviction/decide.ts";

// The eviction path's decisions against an in-memory cluster.
class FakeEvictionCluster implements EvictionClusterPort {
  pods = new Map<string, V1Pod>();
  nodes = new Map<string, V1Node>();
  policies: MigrationPolicy[] = [];
  pdbs: V1PodDisruptionBudget[] = [];
  migrations: StatefulMigration[] = [];
  started: string[] = [];

  async getPod(_ns: string, name: string) {
    return this.pods.get(name);
  }
  async getNode(name: string) {
    return this.nodes.get(name);
  }
  async listPolicies() {
    return this.policies;
  }
  async listPodDisruptionBudgets() {
    return this.pdbs;
  }
  async listEvictionMigrations() {
    return this.migrations;
  }
  async createMigration(_ns: string, m: StatefulMigration) {
    const existing = this.migrations.find((x) => x.metadata.name === m.metadata.name);
    if (existing) return existing;
    const created = { ...m, metadata: { ...m.metadata, uid: `uid-${m.metadata.name}` } };
    this.migrations.push(created);
    return created;
  }
  async recordStarted(_p: MigrationPolicy, migration: string) {
    this.started.push(migration);
  }
}

const pod = (
  name: string,
  extra: {
    labels?: Record<string, string>;
    owner?: string;
    node?: string;
    uid?: string;
    annotations?: Record<string, string>;
  } = {},
): V1Pod => ({
  metadata: {
    name,
    namespace: "ns",
    uid: extra.uid ?? `${name}-uid-0000`,
    labels: extra.labels ?? { app: "orders" },
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
    ...(extra.owner
      ? {
          ownerReferences: [
            { apiVersion: "apps/v1", kind: extra.owner, name: "owner", uid: "o", controller: true },
          ],
        }
      : {}),
  },
  spec: { nodeName: extra.node ?? "node-a", containers: [{ name: "c", image: "i" }] },
  status: { phase: "Running" },
});

const policy = (name = "orders", spec: Partial<MigrationPolicy["spec"]> = {}): MigrationPolicy => ({
  apiVersion: "migration.ms2m.io/v1alpha1",
  kind: "MigrationPolicy",
  metadata: { name, namespace: "ns" },
  spec: {
    selector: { matchLabels: { app: "orders" } },
    transferMode: "Direct",
    replayCutoffSeconds: 120,
    maxConcurrentPerNode: 1,
    onRestoreFailure: "Rollback",
    messageQueueConfig: {
      queueName: "q",
      exchangeName: "x",
      brokerSecretRef: { name: "broker", key: "url" },
    },
    ...spec,
  },
});

function world() {
  const c = new FakeEvictionCluster();
  c.policies.push(policy());
  for (const n of ["node-a", "node-b"]) c.nodes.set(n, { metadata: { name: n }, spec: {} });
  return c;
}

describe("decide", () => {
  it("starts a live migration for a selected pod and answers 429 (retry) naming it", async () => {
    const c = world();
    c.pods.set("web-1", pod("web-1", { owner: "ReplicaSet" }));
    const a = await decide(c, "ns", "web-1");
    expect(a).toMatchObject({ allowed: false, code: 429, reason: "TooManyRequests" });
    const name = evictionMigrationName("web-1", "web-1-uid-0000");
    expect(name).toBe("evict-web-1-web1uid0");
    expect(!a.allowed && a.message).toMatch(
      /pod web-1 is being migrated live to another node by ms2m \(StatefulMigration evict-web-1-web1uid0, Pending\)/,
    );
    const m = c.migrations[0]!;
    expect(m.metadata.labels).toMatchObject({
      [LABEL_TRIGGER]: "eviction",
      [LABEL_POLICY]: "orders",
      [LABEL_SOURCE_NODE]: "node-a",
    });
    expect(m.spec).toMatchObject({
      sourcePod: "web-1",
      transferMode: "Direct",
      messageQueueConfig: { queueName: "q" },
    });
    expect(m.spec.targetNode).toBeUndefined();
    expect(c.started).toEqual([name]);
    // A retry finds the same migration: nothing new is created.
    const again = await decide(c, "ns", "web-1");
    expect(!again.allowed && again.migration).toBe(name);
    expect(c.migrations).toHaveLength(1);
  });

  it("carries the policy's encryption keys and restore policy into the migration it starts", async () => {
    const c = world();
    const keys = {
      publicKeySecretRef: { name: "ckpt-keys", key: "public.pem" },
      privateKeySecretRef: { name: "ckpt-keys", key: "private.pem" },
    };
    c.policies[0] = policy("orders", {
      transferMode: "Registry",
      checkpointImageRepository: "registry:5000/ms2m",
      encryption: keys,
      onRestoreFailure: "ColdStart",
    });
    c.pods.set("web-2", pod("web-2", { owner: "ReplicaSet" }));
    await decide(c, "ns", "web-2");
    expect(c.migrations[0]!.spec).toMatchObject({ encryption: keys, onRestoreFailure: "ColdStart" });
  });

  it.each<[string, (c: FakeEvictionCluster) => void, RegExp]>([
    [
      "a pod no policy selects",
      (c) => c.pods.set("p", pod("p", { labels: { app: "other" } })),
      /no MigrationPolicy/,
    ],
    ["a DaemonSet pod", (c) => c.pods.set("p", pod("p", { owner: "DaemonSet" })), /DaemonSet/],
    [
      "a pod that opted out",
      (c) => c.pods.set("p", pod("p", { annotations: { "migration.ms2m.io/migrate-on-eviction": "false" } })),
      /opted out/,
    ],
    ["a missing pod", () => undefined, /no such pod/],
  ])("allows the eviction of %s, creating nothing", async (_what, setup, why) => {
    const c = world();
    setup(c);
    const a = await decide(c, "ns", "p");
    expect(a.allowed).toBe(true);
    expect(a.allowed && a.why).toMatch(why);
    expect(c.migrations).toEqual([]);
  });

  it("answers a failed migration with its reason and what to do; the pod keeps serving", async () => {
    const c = world();
    c.pods.set("web-1", pod("web-1"));
    await decide(c, "ns", "web-1");
    c.migrations[0]!.status = {
      phase: "Failed",
      failure: { phase: "Pending", reason: "NoTargetNode", message: "no node can take pod web-1" },
    };
    const a = await decide(c, "ns", "web-1");
    expect(!a.allowed && a.code).toBe(429);
    expect(!a.allowed && a.message).toMatch(
      /live migration of pod web-1 failed \(StatefulMigration evict-web-1-web1uid0: NoTargetNode: no node can take pod web-1\); the pod keeps serving/,
    );
    expect(!a.allowed && a.message).toMatch(/migrate-on-eviction=false/);
  });

  it("holds evictions beyond maxConcurrentPerNode without starting more", async () => {
    const c = world();
    c.pods.set("a", pod("a"));
    c.pods.set("b", pod("b"));
    c.pods.set("c", pod("c", { node: "node-b" }));
    await decide(c, "ns", "a");
    const b = await decide(c, "ns", "b");
    expect(!b.allowed && b.message).toMatch(
      /after one of the 1 migration\(s\) MigrationPolicy orders runs from node node-a finishes/,
    );
    expect(c.migrations).toHaveLength(1);
    // Another source node is not held back.
    await decide(c, "ns", "c");
    expect(c.migrations).toHaveLength(2);
  });

  it("respects a PodDisruptionBudget when the migration stops the pod (Sequential), not otherwise", async () => {
    const c = world();
    c.pdbs.push({
      metadata: { name: "orders-pdb" },
      spec: { selector: { matchLabels: { app: "orders" } } },
      status: { disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1 },
    });
    c.pods.set("db-0", pod("db-0", { owner: "StatefulSet" }));
    const seq = await decide(c, "ns", "db-0");
    expect(!seq.allowed && seq.message).toMatch(/would violate PodDisruptionBudget orders-pdb/);
    expect(c.migrations).toEqual([]);
    // A ShadowPod migration never lowers availability.
    c.pods.set("web-1", pod("web-1", { owner: "ReplicaSet" }));
    const shadow = await decide(c, "ns", "web-1");
    expect(!shadow.allowed && shadow.migration).toBeDefined();
    expect(c.migrations).toHaveLength(1);
  });

  it("answers 404 to a drain's retry for a pod a migration recreated under its name elsewhere", async () => {
    const c = world();
    c.nodes.get("node-a")!.spec = { unschedulable: true }; // being drained
    c.pods.set("db-0", pod("db-0", { owner: "StatefulSet", node: "node-b", uid: "new-incarnation" }));
    const now = Date.parse("2026-12-01T10:00:00Z");
    c.migrations.push({
      apiVersion: "migration.ms2m.io/v1alpha1",
      kind: "StatefulMigration",
      metadata: { name: "evict-db-0-olduid00", namespace: "ns", labels: { [LABEL_TRIGGER]: "eviction" } },
      spec: {
        sourcePod: "db-0",
        transferMode: "Direct",
        replayCutoffSeconds: 120,
        onRestoreFailure: "Rollback",
      },
      status: {
        phase: "Completed",
        sourceNode: "node-a",
        targetNode: "node-b",
        targetPod: "db-0",
        sourcePodUID: "old-incarnation",
        completionTime: new Date(now - 30_000).toISOString(),
      },
    });
    const a = await decide(c, "ns", "db-0", { now });
    expect(a).toMatchObject({ allowed: false, code: 404, reason: "NotFound" });
    expect(!a.allowed && a.message).toMatch(/was migrated live to node-b/);
    // node-b being drained itself: a real eviction of the moved pod, migrated again.
    c.nodes.get("node-b")!.spec = { unschedulable: true };
    const b = await decide(c, "ns", "db-0", { now });
    expect(!b.allowed && b.code).toBe(429);
  });

  it("creates nothing on a dry run", async () => {
    const c = world();
    c.pods.set("web-1", pod("web-1"));
    const a = await decide(c, "ns", "web-1", { dryRun: true });
    expect(!a.allowed && a.message).toMatch(/would be migrated live/);
    expect(c.migrations).toEqual([]);
  });

  it("after the hand-over took its label off, is still not a new eviction until the migration has finished", async () => {
    const c = world();
    c.nodes.get("node-a")!.spec = { unschedulable: true }; // being drained
    c.pods.set("db-0", pod("db-0", { owner: "StatefulSet", node: "node-b", uid: "new-incarnation" }));
    c.migrations.push({
      apiVersion: "migration.ms2m.io/v1alpha1",
      kind: "StatefulMigration",
      metadata: { name: "evict-db-0-olduid00", namespace: "ns", labels: { [LABEL_TRIGGER]: "eviction" } },
      spec: {
        sourcePod: "db-0",
        transferMode: "Direct",
        replayCutoffSeconds: 120,
        onRestoreFailure: "Rollback",
      },
      status: {
        phase: "Finalizing",
        sourceNode: "node-a",
        targetNode: "node-b",
        targetPod: "db-0",
        sourcePodUID: "old-incarnation",
      },
    });
    const answer = await decide(c, "ns", "db-0");
    expect(answer).toMatchObject({ allowed: false, code: 429, migration: "evict-db-0-olduid00" });
    expect(c.migrations).toHaveLength(1);
  });
});

describe("a migration's target pod", () => {
  it("is not evicted while the migration runs (a drain retrying the name it took): retry, nothing created", async () => {
    const c = world();
    c.pods.set(
      "db-0",
      pod("db-0", {
        node: "node-b",
        labels: { "migration.ms2m.io/role": "target", "migration.ms2m.io/migration": "evict-db-0-1a2b3c4d" },
      }),
    );
    const answer = await decide(c, "ns", "db-0");
    expect(answer).toMatchObject({ allowed: false, code: 429, migration: "evict-db-0-1a2b3c4d" });
    if (!answer.allowed) expect(answer.message).toMatch(/target of the live migration/);
    expect(c.migrations).toEqual([]);
  });
});
