// Kubernetes API requests per phase of a whole migration (issue 15: each request on the path is a
// round trip to the API server). Pinned, so a change that adds one fails here and says where.
// Counted at the fake kube port, by the phase handler that made them ("reconcile": the
// reconciler's own read of the migration); with the reads answered from the watches
// (adapters/cached-reads.ts, over a watch that is always up to date) and without.
import { afterEach, describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import {
  CachedReads,
  type WatchedObject,
  type WatchedVersion,
} from "../../../src/controller/adapters/cached-reads.ts";
import type { StatefulMigrationSpecInput } from "../../../src/api/v1alpha1/index.ts";
import type { PhaseContext } from "../../../src/controller/context.ts";
import { LABEL_MIGRATION } from "../../../src/controller/names.ts";
import { handlers, StatefulMigrationReconciler } from "../../../src/controller/reconciler.ts";
import { crash, type FakeCluster } from "./fakes.ts";
import { drive, setup, type Kind } from "./scenario.ts";

const original = { ...handlers };
afterEach(() => {
  Object.assign(handlers, original);
  crash.at = 0;
});

/** The fake's stored resourceVersions: a watch with no delay. */
function watchOf(c: FakeCluster): WatchedVersion {
  return (kind, ns, name) => {
    const key = `${ns}/${name}`;
    const o =
      kind === "Pod"
        ? c.pods.get(key)
        : kind === "Node"
          ? c.nodes.get(name)
          : kind === "ReplicaSet"
            ? c.replicaSets.get(key)
            : kind === "StatefulSet"
              ? c.statefulSets.get(key)
              : c.migrations.get(key);
    return o?.metadata?.resourceVersion;
  };
}

/** The fake's stored migration while it has no status (setup.ts wholeFromWatch). */
const wholeOf =
  (c: FakeCluster): WatchedObject =>
  (kind, ns, name) => {
    const m = kind === "StatefulMigration" ? c.migrations.get(`${ns}/${name}`) : undefined;
    return m && !m.status ? m : undefined;
  };

const cachedPort = (c: FakeCluster) =>
  new CachedReads(c, watchOf(c), { whole: wholeOf(c), synced: () => true });

/** As the controller's watches answer (setup.ts), with every pod's metadata. */
const watchesOf = (c: FakeCluster) => {
  return new CachedReads(c, watchOf(c), {
    whole: wholeOf(c),
    metadata: (kind, ns, name) => {
      const pod = kind === "Pod" ? c.pods.get(`${ns}/${name}`) : undefined;
      return pod && { metadata: structuredClone(pod.metadata) };
    },
    synced: () => true,
  });
};

/** A world whose nodes and workloads carry resourceVersions, as the API server's do. */
function world(kind: Kind, spec: Partial<StatefulMigrationSpecInput> = {}) {
  const w = setup(kind, spec);
  for (const o of [...w.cluster.nodes.values(), ...w.cluster.replicaSets.values()])
    o.metadata!.resourceVersion = w.cluster.nextRv();
  for (const o of w.cluster.statefulSets.values()) o.metadata!.resourceVersion = w.cluster.nextRv();
  return w;
}

/** Runs a migration to its end; the kube requests by the handler that made them. */
async function requests(
  kind: Kind,
  cached: boolean | "metadata",
  spec: Partial<StatefulMigrationSpecInput> = {},
) {
  const w = world(kind, spec);
  w.cluster.secrets.set("default/broker", { url: "amqp://broker:5672" });
  const reconciler = cached
    ? new StatefulMigrationReconciler({
        ...w.deps,
        cluster: cached === "metadata" ? watchesOf(w.cluster) : cachedPort(w.cluster),
      })
    : new StatefulMigrationReconciler(w.deps);
  let current = "reconcile";
  for (const [phase, handler] of Object.entries(original)) {
    handlers[phase as keyof typeof handlers] = async (ctx: PhaseContext) => {
      current = phase;
      try {
        return await handler(ctx);
      } finally {
        current = "reconcile";
      }
    };
  }
  const by: Record<string, string[]> = {};
  const hit = w.cluster.faults.hit.bind(w.cluster.faults);
  w.cluster.faults.hit = (method: string) => {
    if (!method.endsWith(":after")) (by[current] ??= []).push(method);
    hit(method);
  };
  const errors = await drive({ ...w, reconciler });
  expect(errors).toEqual([]);
  expect(w.cluster.migration("mig").status?.phase).toBe("Completed");
  const counts = Object.fromEntries(Object.entries(by).map(([k, v]) => [k, v.length]));
  return { by, counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

describe("Kubernetes API requests of a migration, per phase", () => {
  it("Deployment (ShadowPod), reads live", async () => {
    const r = await requests("Deployment", false);
    // Before issue 15's request work: reconcile 2, Pending 7, Checkpointing 3, Transferring 3,
    // Restoring 9, Replaying 2, Finalizing 8 (34).
    // A phase change written beside the next phase's work (Checkpointing's beside the transfers,
    // Transferring's beside Restoring's first pass) counts in the next phase.
    expect(r.counts).toEqual({
      reconcile: 2,
      Pending: 6,
      Checkpointing: 2,
      Transferring: 2,
      Restoring: 10,
      Replaying: 2,
      // No read of the target after its release (its answer says), one of the source's more, off
      // the path: for its deletion cost beside the cutover.
      Finalizing: 8,
    });
    // Pending's phase change rides with Checkpointing's checkpoint intent; Transferring's results
    // with its phase change.
    expect(r.by["Pending"]).toEqual([
      "getPod",
      "updateMigrationStatus",
      "addMigrationFinalizer",
      "getReplicaSet",
      "getNode",
      "getNode",
    ]);
    expect(r.by["Checkpointing"]).toEqual(["getPod", "updateMigrationStatus"]);
    expect(r.by["Transferring"]).toEqual(["updateMigrationStatus", "getReplicaSet"]);
  });

  it("Deployment (ShadowPod), reads answered from the watches", async () => {
    const r = await requests("Deployment", true);
    // The reconciler's reads of the migration: none (the first from its watch, then its writes).
    expect(r.counts).toEqual({
      Pending: 6,
      Checkpointing: 1,
      Transferring: 1,
      Restoring: 4,
      Replaying: 1,
      Finalizing: 5,
    });
    // What is left: writes, first reads and reads of what changed (the target starting).
    expect(r.by["Checkpointing"]).toEqual(["updateMigrationStatus"]);
    expect(r.by["Transferring"]).toEqual(["updateMigrationStatus"]);
    // The target is not read before it is created (the watch shows none); the write beside the
    // first pass is Transferring's phase change.
    expect(r.by["Restoring"]).toEqual([
      "updateMigrationStatus",
      "createPod",
      "getPod",
      "updateMigrationStatus",
    ]);
    expect(r.by["Replaying"]).toEqual(["updateMigrationStatus"]);
    // The source's deletion cost beside the cutover (before its record), the target's release
    // after it; the source's deletion beside the cleanup; Completed.
    expect(r.by["Finalizing"]).toEqual([
      "mergePatchPod",
      "updateMigrationStatus",
      "mergePatchPod",
      "deletePod",
      "updateMigrationStatus",
    ]);
  });

  it("Finalizing: the adoption is read off the pod watch, the source deleted by its uid", async () => {
    const w = world("Deployment");
    w.cluster.secrets.set("default/broker", { url: "amqp://broker:5672" });
    // The ReplicaSet adopts the released target a while later, not in the release's round trip.
    const adopt = w.cluster.onPodWrite!;
    delete w.cluster.onPodWrite;
    const reconciler = new StatefulMigrationReconciler({ ...w.deps, cluster: watchesOf(w.cluster) });
    const calls: string[] = [];
    const hit = w.cluster.faults.hit.bind(w.cluster.faults);
    w.cluster.faults.hit = (method: string) => {
      if (!method.endsWith(":after")) calls.push(method);
      hit(method);
    };
    let adoptedAt = -1;
    const errors = await drive(
      { ...w, reconciler },
      {
        between: () => {
          const s = w.cluster.migration("mig").status;
          const target = s?.targetPod ? w.cluster.pod(s.targetPod) : undefined;
          if (
            adoptedAt < 0 &&
            target &&
            s?.phase === "Finalizing" &&
            !target.metadata?.labels?.[LABEL_MIGRATION]
          ) {
            adopt(target);
            adoptedAt = calls.length;
          }
        },
      },
    );
    expect(errors).toEqual([]);
    expect(adoptedAt).toBeGreaterThan(0);
    expect(w.cluster.migration("mig").status?.phase).toBe("Completed");
    // After the adoption: the source's deletion beside the cleanup, and Completed; nothing read.
    expect(calls.slice(adoptedAt)).toEqual(["deletePod", "updateMigrationStatus"]);
    expect(w.cluster.pod(w.source.metadata!.name!)?.metadata?.deletionTimestamp).toBeDefined();
  });

  it("reads the broker's Secret in Pending, beside its other lookups, and not again", async () => {
    const r = await requests("Deployment", true, {
      messageQueueConfig: {
        queueName: "orders",
        exchangeName: "orders-x",
        brokerSecretRef: { name: "broker", key: "url" },
      },
    });
    expect(r.by["Pending"]).toContain("getSecretKey");
    expect(
      Object.values(r.by)
        .flat()
        .filter((m) => m === "getSecretKey"),
    ).toHaveLength(1);
    // One more than with the URL in the spec (18).
    expect(r.total).toBe(19);
  });

  it("StatefulSet (Sequential) and a bare pod, both ways", async () => {
    expect((await requests("StatefulSet", false)).total).toBe(39);
    expect((await requests("StatefulSet", true)).total).toBe(23);
    expect((await requests("Bare", false)).total).toBe(28);
    expect((await requests("Bare", true)).total).toBe(16);
  });
});

describe("crash at any instant, reads answered from the watches", () => {
  for (const kind of ["Deployment", "StatefulSet"] as const) {
    it(`${kind}: a controller that starts again (nothing kept) completes with one checkpoint and one pod`, async () => {
      const probe = world(kind);
      crash.at = 0;
      crash.count = 0;
      await drive({
        ...probe,
        reconciler: new StatefulMigrationReconciler({
          ...probe.deps,
          cluster: cachedPort(probe.cluster),
        }),
      });
      const total = crash.count;
      expect(total).toBeGreaterThan(15);
      for (let at = 1; at <= total; at++) {
        const w = world(kind);
        const run = () =>
          drive(
            {
              ...w,
              reconciler: new StatefulMigrationReconciler({
                ...w.deps,
                cluster: cachedPort(w.cluster),
              }),
            },
            { maxRounds: 120 },
          );
        crash.count = 0;
        crash.at = at;
        await run();
        crash.at = 0;
        w.deps.sent.clear();
        await run();
        const s = w.cluster.migration("mig").status!;
        expect(s.phase, `crash at call ${at}: ${JSON.stringify(s.failure)}`).toBe("Completed");
        expect(w.checkpointer.requests, `crash at call ${at}`).toHaveLength(1);
        const live = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
        expect(live.map((p) => p.metadata?.name)).toEqual([s.targetPod]);
      }
    });
  }
});

describe("Finalizing: the source's deletion cost beside the cutover", () => {
  it("a refused patch counts only once the cutover is recorded: the migration rolls forward, not back", async () => {
    const w = world("Deployment");
    // The first pod patch of a Deployment migration is that one.
    w.cluster.faults.inject("mergePatchPod", new Ms2mError("Forbidden", "no patch for you"));
    const errors = await drive(w);
    expect(errors).toEqual([]);
    const s = w.cluster.migration("mig").status!;
    expect(s.phase).toBe("Completed");
    expect(s.rollForwards).toBe(1);
    expect(w.messaging.cutovers).toHaveLength(1);
    expect(w.messaging.rollbacks).toEqual([]);
    expect(w.events.reasons()).toContain("RollingForward");
  });
});

describe("Transferring: Checkpointing's phase change and the transfers", () => {
  for (const [mode, order] of [
    ["Registry", ["write sent", "write stored", "transfer"]],
    ["Direct", ["write sent", "transfer", "write stored"]],
  ] as const) {
    it(`${mode}: the checkpoint's record is ${mode === "Registry" ? "stored before" : "written beside"} the transfer`, async () => {
      const w = world("Deployment", { transferMode: mode });
      const seen: string[] = [];
      // The write that ends Checkpointing takes a while.
      const update = w.cluster.updateMigrationStatus.bind(w.cluster);
      w.cluster.updateMigrationStatus = async (m) => {
        const ends =
          m.status?.phase === "Transferring" && w.cluster.migration("mig").status?.phase !== "Transferring";
        if (!ends) return update(m);
        seen.push("write sent");
        await new Promise((r) => setTimeout(r, 20));
        const stored = await update(m);
        seen.push("write stored");
        return stored;
      };
      const transfer = w.transfer.transfer.bind(w.transfer);
      w.transfer.transfer = async (req) => {
        seen.push("transfer");
        return transfer(req);
      };
      await drive(w);
      expect(w.cluster.migration("mig").status?.phase).toBe("Completed");
      expect(seen).toEqual(order);
    });
  }
});
