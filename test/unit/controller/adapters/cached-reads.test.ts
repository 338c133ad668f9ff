import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../src/common/errors.ts";
import { CachedReads, type WatchedVersion } from "../../../../src/controller/adapters/cached-reads.ts";
import { FakeClock, FakeCluster, readyNode } from "../fakes.ts";

/** A watch that is always up to date (the fake's stored resourceVersions), or switched off. */
function world() {
  const cluster = new FakeCluster(new FakeClock());
  const watch = { on: true, lagging: new Map<string, string>() };
  const versions: WatchedVersion = (kind, ns, name) => {
    if (!watch.on) return undefined;
    const key = `${ns}/${name}`;
    const lag = watch.lagging.get(`${kind}/${key}`);
    if (lag !== undefined) return lag;
    const o =
      kind === "Pod"
        ? cluster.pods.get(key)
        : kind === "Node"
          ? cluster.nodes.get(name)
          : kind === "ReplicaSet"
            ? cluster.replicaSets.get(key)
            : kind === "StatefulSet"
              ? cluster.statefulSets.get(key)
              : cluster.migrations.get(key);
    return o?.metadata?.resourceVersion;
  };
  const port = new CachedReads(cluster, versions, { max: 3 });
  cluster.addPod({ metadata: { name: "p", labels: { app: "a" } }, spec: { containers: [] } });
  return { cluster, watch, port, gets: () => cluster.faults.count("getPod") };
}

describe("CachedReads", () => {
  it("answers a read again while the watch shows the object unchanged, and reads live once it changed", async () => {
    const { cluster, port, gets } = world();
    expect((await port.getPod("default", "p"))?.metadata?.name).toBe("p");
    expect(gets()).toBe(1);
    const again = await port.getPod("default", "p");
    expect(gets()).toBe(1);
    // A copy: the caller may change it.
    again!.metadata!.labels!["app"] = "changed";
    expect((await port.getPod("default", "p"))?.metadata?.labels?.["app"]).toBe("a");
    cluster.markReady("p");
    expect((await port.getPod("default", "p"))?.status?.phase).toBe("Running");
    expect(gets()).toBe(2);
    expect(port.stats).toEqual({ hits: 2, misses: 2 });
  });

  it("reads live what the watch has not seen, or sees at another version", async () => {
    const { watch, port, gets } = world();
    watch.on = false;
    await port.getPod("default", "p");
    await port.getPod("default", "p");
    expect(gets()).toBe(2);
    watch.on = true;
    watch.lagging.set("Pod/default/p", "1");
    await port.getPod("default", "p");
    expect(gets()).toBe(3);
    expect(port.holds("Pod", "default", "p")).toBe(false);
  });

  it("keeps a write's answer (a read after the handler's own write sees it) and forgets on a failed write", async () => {
    const { cluster, port, gets } = world();
    const patched = await port.mergePatchPod("default", "p", { metadata: { labels: { b: "1" } } });
    expect((await port.getPod("default", "p"))?.metadata?.labels).toEqual(patched.metadata?.labels);
    expect(gets()).toBe(0);
    // Someone else changes it and the watch has not shown it yet: the guarded write fails...
    const stale = patched.metadata!.resourceVersion!;
    cluster.pods.get("default/p")!.metadata!.resourceVersion = cluster.nextRv();
    cluster.faults.inject("mergePatchPod", new Ms2mError("Conflict", "modified"));
    await expect(
      port.mergePatchPod("default", "p", { metadata: { resourceVersion: stale } }),
    ).rejects.toThrow("modified");
    // ...and the next read goes to the API server.
    expect(port.holds("Pod", "default", "p")).toBe(false);
    await port.getPod("default", "p");
    expect(gets()).toBe(1);
  });

  it("never keeps an object being deleted, nor one it deleted", async () => {
    const { cluster, port, gets } = world();
    await port.getPod("default", "p");
    await port.deletePod("default", "p", { gracePeriodSeconds: 30 });
    expect(cluster.pod("p")?.metadata?.deletionTimestamp).toBeDefined();
    await port.getPod("default", "p");
    await port.getPod("default", "p");
    expect(gets()).toBe(3);
  });

  it("keeps the migration it writes, nodes and workloads; passes lists and Secrets through", async () => {
    const { cluster, port } = world();
    cluster.nodes.set("n", { ...readyNode("n"), metadata: { name: "n", resourceVersion: "7" } });
    await port.getNode("n");
    await port.getNode("n");
    expect(cluster.faults.count("getNode")).toBe(1);
    cluster.addMigration("mig", { sourcePod: "p", checkpointImageRepository: "r/c" });
    const m = (await port.getMigration("default", "mig"))!;
    const written = await port.updateMigrationStatus({ ...m, status: { phase: "Pending" } });
    expect((await port.getMigration("default", "mig"))?.metadata.resourceVersion).toBe(
      written.metadata.resourceVersion,
    );
    expect(cluster.faults.count("getMigration")).toBe(1);
    await port.listNodes();
    await port.listNodes();
    expect(cluster.faults.count("listNodes")).toBe(2);
  });

  it("keeps a bounded number of objects, the least recently stored going first", async () => {
    const { cluster, port, gets } = world();
    for (const n of ["q", "r", "s"]) cluster.addPod({ metadata: { name: n }, spec: { containers: [] } });
    for (const n of ["p", "q", "r", "s"]) await port.getPod("default", n);
    expect(gets()).toBe(4);
    await port.getPod("default", "s");
    expect(gets()).toBe(4);
    await port.getPod("default", "p");
    expect(gets()).toBe(5);
  });
});

describe("CachedReads: a migration the watch keeps whole", () => {
  it("answers the first read of a migration without status from the watch, then reads live once it changed", async () => {
    const cluster = new FakeCluster(new FakeClock());
    const m = cluster.addMigration("mig", { sourcePod: "p", checkpointImageRepository: "r/c" });
    const watched: WatchedVersion = (kind, ns, name) =>
      kind === "StatefulMigration"
        ? cluster.migrations.get(`${ns}/${name}`)?.metadata.resourceVersion
        : undefined;
    // The watch's copy, as it was when it arrived.
    const port = new CachedReads(cluster, watched, {
      whole: (kind) => (kind === "StatefulMigration" ? m : undefined),
    });
    expect(port.holds("StatefulMigration", "default", "mig")).toBe(true);
    expect((await port.getMigration("default", "mig"))?.spec.sourcePod).toBe("p");
    expect(cluster.faults.count("getMigration")).toBe(0);
    // Someone else writes it: the watch's copy is not the current one any more.
    cluster.migration("mig").metadata.resourceVersion = cluster.nextRv();
    expect(port.holds("StatefulMigration", "default", "mig")).toBe(false);
    await port.getMigration("default", "mig");
    expect(cluster.faults.count("getMigration")).toBe(1);
  });
});

describe("CachedReads: watchedMetadata", () => {
  it("gives what the watch keeps of an object's metadata, without a request", async () => {
    const cluster = new FakeCluster(new FakeClock());
    cluster.addPod({ metadata: { name: "t", labels: { app: "a" } }, spec: { containers: [] } });
    const port = new CachedReads(cluster, () => undefined, {
      metadata: (kind, ns, name) =>
        kind === "Pod" ? { metadata: cluster.pods.get(`${ns}/${name}`)?.metadata } : undefined,
    });
    expect(port.watchedMetadata("Pod", "default", "t")?.labels).toEqual({ app: "a" });
    expect(port.watchedMetadata("Pod", "default", "nope")).toBeUndefined();
    expect(port.watchedMetadata("Node", "", "node-a")).toBeUndefined();
    expect(cluster.faults.count("getPod")).toBe(0);
    // Without the hook: nothing.
    expect(new CachedReads(cluster, () => undefined).watchedMetadata("Pod", "default", "t")).toBeUndefined();
  });

  it("a kept object comes before a watch's whole copy: never older than what was read here", async () => {
    const cluster = new FakeCluster(new FakeClock());
    const m = cluster.addMigration("mig", { sourcePod: "p", checkpointImageRepository: "r/c" });
    // The watch's whole copy, then a change it has not delivered yet.
    const stale = structuredClone(m);
    cluster.migration("mig").metadata.resourceVersion = cluster.nextRv();
    let watchedRv = m.metadata.resourceVersion;
    const port = new CachedReads(cluster, () => watchedRv, { whole: () => stale });
    // Read live (the watch shows another version than its copy's): kept.
    watchedRv = "lagging";
    const live = await port.getMigration("default", "mig");
    expect(cluster.faults.count("getMigration")).toBe(1);
    // The watch shows the whole copy's version again (it is older than the kept one): read live.
    watchedRv = stale.metadata.resourceVersion;
    await port.getMigration("default", "mig");
    expect(cluster.faults.count("getMigration")).toBe(2);
    expect(live?.metadata.resourceVersion).toBe(cluster.migration("mig").metadata.resourceVersion);
    expect(live?.metadata.resourceVersion).not.toBe(stale.metadata.resourceVersion);
  });
});

describe("CachedReads: absent", () => {
  it("says a pod is absent only once the watches listed, the watch shows none and none was written here", async () => {
    const cluster = new FakeCluster(new FakeClock());
    let synced = false;
    const watched: WatchedVersion = (kind, ns, name) =>
      kind === "Pod" ? cluster.pods.get(`${ns}/${name}`)?.metadata?.resourceVersion : undefined;
    const port = new CachedReads(cluster, watched, { synced: () => synced });
    expect(port.absent("Pod", "default", "t")).toBe(false);
    synced = true;
    expect(port.absent("Pod", "default", "t")).toBe(true);
    // Created here: not absent even where the watch has not shown it yet.
    await port.createPod("default", { metadata: { name: "t" }, spec: { containers: [] } });
    const lagging = new CachedReads(cluster, () => undefined, { synced: () => true });
    expect(port.absent("Pod", "default", "t")).toBe(false);
    expect(lagging.absent("Pod", "default", "t")).toBe(true);
    await lagging.createPod("default", { metadata: { name: "u" }, spec: { containers: [] } });
    expect(lagging.absent("Pod", "default", "u")).toBe(false);
  });
});
