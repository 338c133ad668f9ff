// A checkpoint is never restored into another incarnation of its workload: a StatefulSet (or a
// Deployment's ReplicaSet, or a bare pod) deleted and recreated under the same name during the
// migration fails it with WorkloadReplaced and rolls it back; every checkpoint and transfer
// request names the incarnation it is of.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { controllerOf } from "../../../src/kube/owners.ts";
import { workloadOf, workloadReplacedMessage } from "../../../src/controller/lifecycle/incarnation.ts";
import type { TransferRequest } from "../../../src/controller/ports.ts";
import { drive, setup } from "./scenario.ts";

type W = ReturnType<typeof setup>;
const statusOf = (w: W) => w.cluster.migration("mig").status!;
const rolledBack = (w: W) => statusOf(w).conditions?.find((c) => c.type === "RolledBack")?.status;

/** Deletes the StatefulSet and creates it again under the same name (a new UID). */
function recreateStatefulSet(w: W): string {
  const old = w.cluster.statefulSets.get("default/db")!;
  const uid = "sts-uid-2";
  w.cluster.statefulSets.set("default/db", { ...old, metadata: { ...old.metadata, uid } });
  return uid;
}

/** Runs `fn` right after the first transfer finished (between Transferring and Restoring). */
function afterTransfer(w: W, fn: () => void): void {
  const transfer = w.transfer.transfer.bind(w.transfer);
  let done = false;
  w.transfer.transfer = async (req: TransferRequest) => {
    const res = await transfer(req);
    if (!done) {
      done = true;
      fn();
    }
    return res;
  };
}

describe("the incarnation a checkpoint is of", () => {
  it("is named in every checkpoint and transfer request: the owner's UID, or the bare pod's", async () => {
    for (const [kind, want] of [
      ["StatefulSet", { kind: "StatefulSet", name: "db", uid: "sts-uid" }],
      ["Deployment", { kind: "ReplicaSet", name: "web-7d9f", uid: "rs-uid" }],
    ] as const) {
      const w = setup(kind);
      expect(await drive(w)).toEqual([]);
      expect(statusOf(w).phase).toBe("Completed");
      expect(w.checkpointer.requests.map((r) => r.workload)).toEqual([want]);
      expect(w.transfer.requests.map((r) => r.workload)).toEqual([want]);
    }
    const bare = setup("Bare");
    expect(await drive(bare)).toEqual([]);
    expect(bare.checkpointer.requests[0]?.workload).toEqual({
      kind: "Pod",
      name: "solo",
      uid: bare.source.metadata?.uid,
    });
  });

  it("workloadOf: nothing before Pending recorded it", () => {
    const w = setup("StatefulSet");
    expect(workloadOf(w.cluster.migration("mig"))).toBeUndefined();
  });
});

describe("a StatefulSet deleted and recreated under the same name", () => {
  it("during Checkpointing: refused before the transfer (WorkloadReplaced), rolled back, nothing sent", async () => {
    const w = setup("StatefulSet");
    // While the container is checkpointed: `kubectl delete sts db --cascade=orphan`, then the
    // StatefulSet is applied again and adopts the running pod.
    const checkpoint = w.checkpointer.checkpoint.bind(w.checkpointer);
    let replaced = false;
    w.checkpointer.checkpoint = async (req) => {
      const res = await checkpoint(req);
      replaced = true;
      recreateStatefulSet(w);
      const src = w.cluster.pods.get("default/db-1")!;
      src.metadata!.ownerReferences = [{ ...controllerOf(src)!, uid: "sts-uid-2" }];
      return res;
    };
    await drive(w);
    expect(replaced).toBe(true);
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    expect(s.failure).toMatchObject({ phase: "Transferring", reason: "WorkloadReplaced" });
    expect(s.failure?.message).toBe(
      workloadReplacedMessage({ kind: "StatefulSet", name: "db", uid: "sts-uid" }, "sts-uid-2"),
    );
    expect(s.failure?.message).toContain("StatefulSet db was deleted and recreated during the migration");
    expect(s.failure?.message).toContain("create a new StatefulMigration");
    expect(rolledBack(w)).toBe("True");
    expect(w.transfer.requests).toEqual([]);
    // The checkpoint is released; the source keeps running, untouched, in the new StatefulSet.
    expect(w.transfer.cleaned.map((a) => a.keepTargetImage)).toEqual([undefined]);
    const src = w.cluster.pod("db-1")!;
    expect(src.metadata?.uid).toBe(w.source.metadata?.uid);
    expect(src.metadata?.deletionTimestamp).toBeUndefined();
    expect(controllerOf(src)?.uid).toBe("sts-uid-2");
    expect(w.events.reasons()).toContain("WorkloadReplaced");
  });

  it("after the transfer: refused in Restoring before the source is stopped, no target created", async () => {
    const w = setup("StatefulSet");
    afterTransfer(w, () => recreateStatefulSet(w));
    await drive(w);
    const s = statusOf(w);
    expect(s.failure).toMatchObject({ phase: "Restoring", reason: "WorkloadReplaced" });
    expect(rolledBack(w)).toBe("True");
    expect(s.sourceDeletionRequestedAt).toBeUndefined();
    const src = w.cluster.pod("db-1")!;
    expect(src.metadata?.uid).toBe(w.source.metadata?.uid);
    expect(src.metadata?.deletionTimestamp).toBeUndefined();
    expect([...w.cluster.pods.values()].map((p) => p.metadata?.name)).toEqual(["db-1"]);
    expect(w.transfer.cleaned).toHaveLength(1);
  });

  it("past the point of no return: the new StatefulSet's pod is left alone, no roll-forward restores the old state into it", async () => {
    const w = setup("StatefulSet");
    // No kubelet: the source stays Terminating in Restoring, its deletion requested.
    await drive(w, { maxRounds: 8, kubelet: false });
    expect(statusOf(w).phase).toBe("Restoring");
    expect(statusOf(w).sourceDeletionRequestedAt).toBeDefined();
    // The StatefulSet is deleted and recreated; the old pod goes, the new one creates db-1.
    recreateStatefulSet(w);
    w.cluster.pods.get("default/db-1")!.metadata!.finalizers = [];
    w.cluster.kubeletConfirm("db-1");
    const fresh: V1Pod = w.cluster.addPod({
      metadata: {
        name: "db-1",
        labels: { app: "db" },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts-uid-2", controller: true },
        ],
      },
      spec: { containers: [{ name: "app", image: "registry.test/consumer:1" }] },
    });
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    expect(s.failure?.reason).toBe("WorkloadReplaced");
    expect(s.failure?.message).toContain("exists only in the checkpoint, which is kept");
    expect(s.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("False");
    expect(s.rollForwards ?? 0).toBe(0);
    const pod = w.cluster.pod("db-1")!;
    expect(pod.metadata?.uid).toBe(fresh.metadata?.uid);
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    expect(w.events.reasons()).not.toContain("RollingForward");
    expect(w.events.reasons()).not.toContain("FreshPodReplaced");
  });

  it("a StatefulSet that is only gone (not recreated) is not WorkloadReplaced", async () => {
    const w = setup("StatefulSet");
    afterTransfer(w, () => w.cluster.statefulSets.delete("default/db"));
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("OwnerLost");
  });
});

describe("a StatefulSet deleted with its pods (cascading) and recreated under the same name", () => {
  /**
   * `kubectl delete sts db` (Background): the garbage collector deletes db-1 with it; the same
   * StatefulSet applied again creates db-1 afresh (another UID), from its template.
   */
  function cascade(w: W): V1Pod {
    recreateStatefulSet(w);
    w.cluster.pods.delete("default/db-1");
    return w.cluster.addPod({
      metadata: {
        name: "db-1",
        labels: { app: "db" },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts-uid-2", controller: true },
        ],
      },
      spec: { containers: [{ name: "app", image: "registry.test/consumer:1" }] },
    });
  }

  it("after the checkpoint was taken: refused before the transfer (WorkloadReplaced), rolled back, the new pod left alone", async () => {
    const w = setup("StatefulSet");
    const checkpoint = w.checkpointer.checkpoint.bind(w.checkpointer);
    let fresh: V1Pod | undefined;
    w.checkpointer.checkpoint = async (req) => {
      const res = await checkpoint(req);
      fresh = cascade(w);
      return res;
    };
    await drive(w);
    const s = statusOf(w);
    expect(s.failure).toMatchObject({ phase: "Transferring", reason: "WorkloadReplaced" });
    expect(s.failure?.message).toBe(
      workloadReplacedMessage({ kind: "StatefulSet", name: "db", uid: "sts-uid" }, "sts-uid-2"),
    );
    expect(rolledBack(w)).toBe("True");
    expect(w.transfer.requests).toEqual([]);
    expect(w.transfer.cleaned).toHaveLength(1);
    const pod = w.cluster.pod("db-1")!;
    expect(pod.metadata?.uid).toBe(fresh?.metadata?.uid);
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    expect(pod.metadata?.labels).toEqual({ app: "db" });
    expect(pod.metadata?.annotations).toBeUndefined();
  });

  it("before the kubelet took the checkpoint (it answers 404): SourcePodLost, not CheckpointFailed", async () => {
    const w = setup("StatefulSet");
    let fresh: V1Pod | undefined;
    w.checkpointer.checkpoint = async (req) => {
      w.checkpointer.requests.push(req);
      fresh = cascade(w);
      throw new Ms2mError("NotFound", "kubelet checkpoint: HTTP 404 container app does not exist");
    };
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    expect(s.failure).toMatchObject({ phase: "Checkpointing", reason: "SourcePodLost" });
    expect(s.failure?.message).toBe("source pod db-1 was deleted or replaced during the migration");
    expect(rolledBack(w)).toBe("True");
    expect(w.transfer.requests).toEqual([]);
    const pod = w.cluster.pod("db-1")!;
    expect(pod.metadata?.uid).toBe(fresh?.metadata?.uid);
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
  });

  it("a checkpoint refused while the source still runs stays CheckpointFailed", async () => {
    const w = setup("StatefulSet");
    w.checkpointer.checkpoint = async () => {
      throw new Ms2mError("NotFound", "kubelet checkpoint: HTTP 404 checkpointing is disabled");
    };
    await drive(w);
    expect(statusOf(w).failure).toMatchObject({ phase: "Checkpointing", reason: "CheckpointFailed" });
  });
});

describe("other workloads", () => {
  it("a Deployment's ReplicaSet recreated under its name (Deployment re-applied): WorkloadReplaced", async () => {
    const w = setup("Deployment");
    afterTransfer(w, () => {
      const rs = w.cluster.replicaSets.get("default/web-7d9f")!;
      w.cluster.replicaSets.set("default/web-7d9f", { ...rs, metadata: { ...rs.metadata, uid: "rs-uid-2" } });
    });
    await drive(w);
    const s = statusOf(w);
    expect(s.failure).toMatchObject({ phase: "Restoring", reason: "WorkloadReplaced" });
    expect(s.failure?.message).toContain("ReplicaSet web-7d9f was deleted and recreated");
    expect(rolledBack(w)).toBe("True");
    expect(w.cluster.pod("web-7d9f-abcde")?.metadata?.deletionTimestamp).toBeUndefined();
  });

  it("a bare pod deleted and created again under its name after the checkpoint: WorkloadReplaced", async () => {
    const w = setup("Bare");
    afterTransfer(w, () => {
      w.cluster.pods.delete("default/solo");
      w.cluster.addPod({ metadata: { name: "solo", labels: { app: "solo" } }, spec: w.source.spec! });
    });
    await drive(w);
    const s = statusOf(w);
    expect(s.failure).toMatchObject({ phase: "Restoring", reason: "WorkloadReplaced" });
    expect(s.failure?.message).toContain("pod solo was deleted and recreated");
    expect(rolledBack(w)).toBe("True");
  });
});
