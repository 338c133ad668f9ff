import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { Ms2mError } from "../../../../src/common/errors.ts";
import { controllerOf } from "../../../../src/kube/owners.ts";
import { MAX_ROLL_FORWARDS } from "../../../../src/controller/phases/rollforward.ts";
import { crash } from "../fakes.ts";
import { drive, playKubelet, setup } from "../scenario.ts";

// Roll-forward after the point of no return (src/controller/phases/rollforward.ts).
type W = ReturnType<typeof setup>;
const statusOf = (w: W) => w.cluster.migration("mig").status!;
const phaseOf = (w: W) => w.cluster.migrations.get("default/mig")?.status?.phase;

/** The StatefulSet controller recreating db-1 from its template: a pod without the migrated state. */
function freshPod(w: W): V1Pod {
  return w.cluster.addPod({
    metadata: {
      name: "db-1",
      labels: { app: "db" },
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts-uid", controller: true },
      ],
    },
    spec: { nodeName: "node-a", containers: [{ name: "app", image: "registry.test/consumer:1" }] },
    status: { phase: "Running" },
  });
}

/** The migrated pod: db-1 started from the checkpoint image, owned by the StatefulSet. */
function expectMigrated(w: W, node = "node-b") {
  const s = statusOf(w);
  expect(s.phase, JSON.stringify(s.failure)).toBe("Completed");
  const live = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
  expect(live.map((p) => p.metadata?.name)).toEqual(["db-1"]);
  const pod = live[0]!;
  expect(pod.spec?.nodeName).toBe(node);
  expect(pod.spec?.containers[0]!.image).toBe(s.containers![0]!.checkpointImage);
  expect(controllerOf(pod)?.uid).toBe("sts-uid");
  expect(w.checkpointer.requests).toHaveLength(1);
}

/** Drives until the source was deleted and the target is about to be created (source held, Terminating). */
async function untilSourceDeleted(w: W) {
  await drive(w, { maxRounds: 8, kubelet: false });
  expect(phaseOf(w)).toBe("Restoring");
  expect(statusOf(w).sourceDeletionRequestedAt).toBeDefined();
}

describe("Sequential past the point of no return", () => {
  it("writes the source's spec to the status with the deletion intent", async () => {
    const w = setup("StatefulSet");
    await untilSourceDeleted(w);
    const t = JSON.parse(statusOf(w).sourcePodTemplate!) as V1Pod;
    expect(t.spec?.hostname).toBe("db-1");
    expect(t.metadata?.labels?.app).toBe("db");
  });

  it("replaces a fresh pod the StatefulSet created under the name before the target (HandoverRaceLost)", async () => {
    const w = setup("StatefulSet");
    await untilSourceDeleted(w);
    // The kubelet confirms and, in the same instant, the StatefulSet controller wins the race.
    w.cluster.pods.get("default/db-1")!.metadata!.finalizers = [];
    w.cluster.kubeletConfirm("db-1");
    const fresh = freshPod(w);
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expectMigrated(w);
    expect(w.cluster.pod("db-1")?.metadata?.uid).not.toBe(fresh.metadata?.uid);
    expect(w.events.reasons()).toContain("FreshPodReplaced");
    expect(statusOf(w).failure).toBeUndefined();
  });

  it("replaces the fresh pod when the race is lost on the create itself, and again if it happens twice", async () => {
    const w = setup("StatefulSet");
    const race = () => {
      freshPod(w);
      return new Ms2mError("AlreadyExists", 'pods "db-1" already exists');
    };
    w.cluster.faults.inject("createPod", race, race);
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expectMigrated(w);
    expect(w.events.reasons().filter((r) => r === "FreshPodReplaced")).toHaveLength(2);
  });

  it("recreates the target from the checkpoint when it fails to start", async () => {
    const w = setup("StatefulSet");
    let broken = 1;
    const adopt = w.cluster.onPodWrite;
    w.cluster.onPodWrite = (p) => {
      adopt?.(p);
      if (p.spec?.containers[0]?.image?.startsWith("registry.test/ckpt") && broken-- > 0) {
        p.status = { phase: "Failed", reason: "Evicted", message: "restore failed" };
      }
    };
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expectMigrated(w);
    expect(statusOf(w).rollForwards).toBe(1);
    expect(w.events.reasons()).toContain("RollingForward");
  });

  it("Registry: restores on the source node when the target node goes NotReady", async () => {
    const w = setup("StatefulSet", { transferMode: "Registry" });
    await untilSourceDeleted(w);
    w.cluster.nodes.get("node-b")!.status = { conditions: [{ type: "Ready", status: "Unknown" }] };
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expectMigrated(w, "node-a");
    expect(statusOf(w).targetNode).toBe("node-a");
  });

  it("Direct: waits for the target node (the image is only there) and completes when it is back", async () => {
    const w = setup("StatefulSet", { transferMode: "Direct" });
    await untilSourceDeleted(w);
    w.cluster.nodes.get("node-b")!.status = { conditions: [{ type: "Ready", status: "Unknown" }] };
    await drive(w, { maxRounds: 20 });
    expect(phaseOf(w)).toBe("Restoring");
    expect(statusOf(w).failure).toBeUndefined();
    w.cluster.nodes.get("node-b")!.status = { conditions: [{ type: "Ready", status: "True" }] };
    await drive(w);
    expectMigrated(w, "node-b");
  });

  it("keeps a target that is not ready during replay instead of failing", async () => {
    const w = setup("StatefulSet");
    w.messaging.drained = false;
    for (let i = 0; i < 60 && !(phaseOf(w) === "Replaying" && w.messaging.started.length > 0); i++) {
      await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch(() => undefined);
      playKubelet(w);
      w.clock.advance(10);
    }
    expect(phaseOf(w)).toBe("Replaying");
    const uid = w.cluster.pod("db-1")!.metadata!.uid;
    const st = w.cluster.pod("db-1")!.status!;
    st.conditions = [{ type: "Ready", status: "False" }];
    await w.reconciler.reconcile({ namespace: "default", name: "mig" });
    expect(phaseOf(w)).toBe("Replaying");
    st.conditions = [{ type: "Ready", status: "True" }];
    w.messaging.drained = true;
    await drive(w);
    expectMigrated(w);
    expect(w.cluster.pod("db-1")!.metadata!.uid).toBe(uid);
  });

  it.each(["Restoring", "Replaying"] as const)(
    "deleting the migration in %s finishes forward instead of rolling back",
    async (phase) => {
      const w = setup("StatefulSet");
      w.messaging.drained = false;
      for (let i = 0; i < 60 && phaseOf(w) !== phase; i++) {
        await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch(() => undefined);
        if (phase !== "Restoring") playKubelet(w);
        w.clock.advance(10);
      }
      expect(phaseOf(w)).toBe(phase);
      if (phase === "Restoring") {
        // Past the point of no return only once the source's deletion was requested.
        for (let i = 0; i < 5 && !statusOf(w).sourceDeletionRequestedAt; i++)
          await w.reconciler.reconcile({ namespace: "default", name: "mig" });
        expect(statusOf(w).sourceDeletionRequestedAt).toBeDefined();
      }
      w.cluster.deleteMigration("mig");
      w.messaging.drained = true;
      await drive(w);
      expect(w.cluster.migrations.has("default/mig")).toBe(false);
      expect(w.events.reasons()).not.toContain("Cancelled");
      const live = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
      expect(live.map((p) => p.metadata?.name)).toEqual(["db-1"]);
      expect(live[0]!.spec?.nodeName).toBe("node-b");
      expect(controllerOf(live[0]!)?.uid).toBe("sts-uid");
      expect(w.messaging.queues.size).toBe(0);
    },
  );

  it("gives up after the roll-forward budget: Failed, RolledBack=False, checkpoint kept", async () => {
    const w = setup("StatefulSet");
    const adopt = w.cluster.onPodWrite;
    w.cluster.onPodWrite = (p) => {
      adopt?.(p);
      if (p.spec?.containers[0]?.image?.startsWith("registry.test/ckpt"))
        p.status = { phase: "Failed", reason: "Evicted", message: "restore failed" };
    };
    await drive(w, { maxRounds: 200 });
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    expect(s.rollForwards).toBe(MAX_ROLL_FORWARDS);
    expect(s.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("False");
    expect(w.events.reasons()).toContain("StateNotRestored");
    expect(w.transfer.cleaned).toHaveLength(0);
  });

  it("a refused source deletion is still before the point of no return: rollback, source untouched", async () => {
    const w = setup("StatefulSet");
    w.cluster.faults.inject("deletePod", new Ms2mError("Forbidden", "denied"));
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("Forbidden");
    expect(statusOf(w).rollForwards).toBeUndefined();
    expect(w.cluster.pod("db-1")?.metadata?.uid).toBe(w.source.metadata?.uid);
  });

  it("crash at any instant of a race-lost hand-over: completes with one checkpoint and one pod", async () => {
    const arm = (w: W) => {
      const race = () => {
        freshPod(w);
        return new Ms2mError("AlreadyExists", 'pods "db-1" already exists');
      };
      w.cluster.faults.inject("createPod", race);
    };
    const probe = setup("StatefulSet");
    arm(probe);
    crash.at = 0;
    crash.count = 0;
    await drive(probe);
    const total = crash.count;
    expect(total).toBeGreaterThan(20);
    try {
      for (let at = 1; at <= total; at++) {
        const w = setup("StatefulSet");
        arm(w);
        crash.count = 0;
        crash.at = at;
        await drive(w, { maxRounds: 120 });
        crash.at = 0;
        w.deps.sent.clear();
        await drive(w, { maxRounds: 120 });
        expectMigrated(w);
      }
    } finally {
      crash.at = 0;
    }
  });
});

describe("ShadowPod after the cutover", () => {
  it("a failure in the hand-over retries Finalizing and never deletes the target", async () => {
    const w = setup("Deployment");
    w.messaging.drained = false;
    let armed = false;
    for (let i = 0; i < 60 && phaseOf(w) !== "Completed"; i++) {
      await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch(() => undefined);
      if (!armed && phaseOf(w) === "Replaying") {
        // Refused once: the next pod patch is the hand-over's, after the cutover.
        w.cluster.faults.inject("mergePatchPod", new Ms2mError("Invalid", "refused"));
        w.messaging.drained = true;
        armed = true;
      }
      playKubelet(w);
      w.clock.advance(10);
    }
    const s = statusOf(w);
    expect(s.phase, JSON.stringify(s.failure)).toBe("Completed");
    expect(w.cluster.pod(s.targetPod!)?.metadata?.deletionTimestamp).toBeUndefined();
    expect(s.rollForwards).toBe(1);
    expect(w.events.reasons()).toContain("RollingForward");
  });
});
