import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { controllerOf } from "../../../src/kube/owners.ts";
import { FINALIZER, HANDOVER_FINALIZER } from "../../../src/controller/names.ts";
import { shadowPodName } from "../../../src/controller/strategies/shadow-pod.ts";
import { busyBackoffCapMs, RetryAfter } from "../../../src/controller/reconciler.ts";
import { crash } from "./fakes.ts";
import { drive, playKubelet, setup } from "./scenario.ts";
import { sleep } from "../../../tooling/exec.ts";

const phaseOf = (w: ReturnType<typeof setup>) => w.cluster.migrations.get("default/mig")?.status?.phase;
const statusOf = (w: ReturnType<typeof setup>) => w.cluster.migration("mig").status!;

describe("ShadowPod from a Deployment", () => {
  it("migrates to the target node and hands the pod to the ReplicaSet", async () => {
    const w = setup("Deployment");
    const errors = await drive(w);
    expect(errors).toEqual([]);
    const s = statusOf(w);
    expect(s.phase).toBe("Completed");
    expect(s.strategy).toBe("ShadowPod");
    expect(s.owner).toMatchObject({
      kind: "ReplicaSet",
      name: "web-7d9f",
      workloadKind: "Deployment",
      workloadName: "web",
    });
    const target = w.cluster.pod(s.targetPod!)!;
    expect(target.spec?.nodeName).toBe("node-b");
    expect(controllerOf(target)?.uid).toBe("rs-uid");
    expect(target.metadata?.ownerReferences).toHaveLength(1);
    expect(target.metadata?.labels).toEqual({ app: "web", "pod-template-hash": "7d9f", tier: "backend" });
    expect(target.spec?.containers[0]!.image).toBe(s.containers![0]!.checkpointImage);
    expect(s.containers![0]!.checkpointImage).toMatch(/^registry\.test\/ckpt:app-/);
    // Full spec carried over, admission-owned fields dropped.
    expect(target.spec?.serviceAccountName).toBe("consumer");
    expect(target.spec?.volumes).toEqual([{ name: "data", emptyDir: {} }]);
    expect(target.spec?.containers[0]!.env).toEqual([{ name: "QUEUE", value: "orders" }]);
    expect(target.spec?.containers[0]!.readinessProbe).toBeDefined();
    expect(target.spec?.containers[0]!.securityContext).toEqual({ runAsNonRoot: true });
    expect(target.spec?.tolerations).toEqual([{ key: "dedicated", operator: "Exists" }]);
    expect(target.spec?.priority).toBeUndefined();
    // Source gone, one checkpoint, one transfer, queues cleaned up.
    expect(w.cluster.pod(w.source.metadata!.name!)?.metadata?.deletionTimestamp).toBeDefined();
    expect(w.checkpointer.requests).toHaveLength(1);
    expect(w.transfer.requests).toHaveLength(1);
    expect(w.messaging.queues.size).toBe(0);
    expect(w.messaging.cutovers).toEqual([
      expect.objectContaining({ sourcePod: "web-7d9f-abcde", targetPod: s.targetPod, cutoff: false }),
    ]);
    expect(w.transfer.cleaned).toHaveLength(1);
    // Observability.
    expect(w.events.reasons()).toEqual(
      expect.arrayContaining([
        "Pending",
        "Checkpointing",
        "Transferring",
        "Restoring",
        "Replaying",
        "Finalizing",
        "Completed",
      ]),
    );
    expect(s.phaseTimings!.map((t) => t.phase)).toEqual([
      "Pending",
      "Checkpointing",
      "Transferring",
      "Restoring",
      "Replaying",
      "Finalizing",
    ]);
    for (const t of s.phaseTimings!) {
      expect(t.startTime).toMatch(/\.\d{3}Z$/);
      expect(t.durationMillis).toBe(Date.parse(t.endTime!) - Date.parse(t.startTime));
    }
    expect(s.conditions?.find((c) => c.type === "Succeeded")?.status).toBe("True");
    expect(s.duration).toMatch(/^\d+\.\d{3}s$/);
  });

  it("holds the target out of the selector and owned by the migration while it replays", async () => {
    const w = setup("Deployment");
    w.messaging.drained = false;
    await drive(w, { maxRounds: 12 });
    expect(phaseOf(w)).toBe("Replaying");
    const target = w.cluster.pod(statusOf(w).targetPod!)!;
    expect(target.metadata?.labels?.app).toBeUndefined();
    expect(target.metadata?.labels?.["pod-template-hash"]).toBeUndefined();
    expect(controllerOf(target)?.kind).toBe("StatefulMigration");
    expect(w.messaging.started).toEqual([target.metadata!.name]);
  });

  it("cuts over when the replay cutoff fires and records what was left", async () => {
    const w = setup("Deployment", { replayCutoffSeconds: 1 });
    w.messaging.drained = false;
    w.messaging.replayed = 40;
    w.messaging.remaining = 7;
    await drive(w, { maxRounds: 12 });
    expect(phaseOf(w)).toBe("Replaying");
    w.clock.advance(1500);
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Completed");
    expect(s.replay).toMatchObject({ cutoffReached: true, messagesRemaining: 7, messagesReplayed: 40 });
    expect(w.messaging.cutovers[0]!.cutoff).toBe(true);
  });
});

describe("Sequential from a StatefulSet", () => {
  it("takes over the source's name on the target node and is adopted by the StatefulSet", async () => {
    const w = setup("StatefulSet");
    const errors = await drive(w);
    expect(errors).toEqual([]);
    const s = statusOf(w);
    expect(s.phase).toBe("Completed");
    expect(s.strategy).toBe("Sequential");
    expect(s.targetPod).toBe("db-1");
    const pod = w.cluster.pod("db-1")!;
    expect(pod.metadata?.uid).not.toBe(w.source.metadata?.uid);
    expect(pod.spec?.nodeName).toBe("node-b");
    expect(pod.spec?.hostname).toBe("db-1");
    expect(controllerOf(pod)?.uid).toBe("sts-uid");
    expect(pod.metadata?.labels).toEqual(w.source.metadata?.labels);
    expect(pod.metadata?.finalizers ?? []).not.toContain(HANDOVER_FINALIZER);
    expect(s.sourceDeletionRequestedAt).toBeDefined();
    expect(w.checkpointer.requests).toHaveLength(1);
  });

  it("orphans and holds the source with a finalizer before deleting it with a short grace period", async () => {
    const w = setup("StatefulSet");
    // No kubelet: the source stays Terminating.
    await drive(w, { maxRounds: 8, kubelet: false });
    expect(phaseOf(w)).toBe("Restoring");
    const src = w.cluster.pod("db-1")!;
    expect(src.metadata?.uid).toBe(w.source.metadata?.uid);
    expect(src.metadata?.deletionTimestamp).toBeDefined();
    expect(src.metadata?.deletionGracePeriodSeconds).toBe(1);
    expect(src.metadata?.finalizers).toContain(HANDOVER_FINALIZER);
    expect(controllerOf(src)).toBeUndefined();
    expect(src.metadata?.labels?.app).toBeUndefined();
  });

  it("replaces a pod the StatefulSet recreated first and restores the target in its place", async () => {
    const w = setup("StatefulSet");
    await drive(w, { maxRounds: 8, kubelet: false });
    // The kubelet confirms and, in the same instant, the StatefulSet controller wins the race.
    w.cluster.pods.get("default/db-1")!.metadata!.finalizers = [];
    w.cluster.kubeletConfirm("db-1");
    w.cluster.addPod({
      metadata: {
        name: "db-1",
        labels: { app: "db" },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts-uid", controller: true },
        ],
      },
      spec: { containers: [{ name: "app", image: "registry.test/consumer:1" }] },
    });
    await drive(w);
    // Past the point of no return: the fresh pod has none of the state, the target replaces it
    // (more cases in rollforward.test.ts).
    expect(statusOf(w).failure).toBeUndefined();
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.cluster.pod("db-1")?.spec?.nodeName).toBe("node-b");
    expect(w.events.reasons()).toContain("FreshPodReplaced");
  });
});

describe("Transferring", () => {
  it("sends the containers of a multi-container pod side by side and records each", async () => {
    const w = setup("Deployment");
    w.cluster.pods.get("default/web-7d9f-abcde")!.spec!.containers.push({ name: "sidecar", image: "x/y:1" });
    let inFlight = 0;
    let most = 0;
    const send = w.transfer.transfer.bind(w.transfer);
    w.transfer.transfer = async (req) => {
      most = Math.max(most, ++inFlight);
      await sleep(20);
      inFlight--;
      return send(req);
    };
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(most).toBe(2);
    expect(statusOf(w).containers?.map((c) => [c.name, c.transferred])).toEqual([
      ["app", true],
      ["sidecar", true],
    ]);
  });

  it("keeps a finished container's result when another fails retriably, and repeats only the other", async () => {
    const w = setup("Deployment");
    w.cluster.pods.get("default/web-7d9f-abcde")!.spec!.containers.push({ name: "sidecar", image: "x/y:1" });
    let failed = false;
    const send = w.transfer.transfer.bind(w.transfer);
    w.transfer.transfer = async (req) => {
      if (req.container === "sidecar" && !failed) {
        failed = true;
        throw new Ms2mError("ServiceUnavailable", "agent busy");
      }
      return send(req);
    };
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.transfer.requests.map((r) => r.container).sort()).toEqual(["app", "sidecar"]);
  });
});

describe("bare pods", () => {
  it("ends as a bare pod on the target node", async () => {
    const w = setup("Bare");
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Completed");
    expect(s.owner).toBeUndefined();
    const target = w.cluster.pod(shadowPodName("solo", w.cluster.migration("mig").metadata.uid!))!;
    expect(target.metadata?.ownerReferences ?? []).toEqual([]);
    expect(target.metadata?.labels).toEqual({ app: "solo" });
    expect(w.cluster.pod("solo")?.metadata?.deletionTimestamp).toBeDefined();
  });

  it("Sequential keeps the name", async () => {
    const w = setup("Bare", { migrationStrategy: "Sequential" });
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.cluster.pod("solo")?.spec?.nodeName).toBe("node-b");
    expect(w.cluster.pod("solo")?.metadata?.ownerReferences ?? []).toEqual([]);
  });
});

describe("Pending", () => {
  it("adds the finalizer before anything else", async () => {
    const w = setup("Deployment");
    w.checkpointer.faults.inject("checkpoint", new Ms2mError("ServiceUnavailable", "agent down"));
    await drive(w, { maxRounds: 1 });
    expect(w.cluster.migration("mig").metadata.finalizers).toEqual([FINALIZER]);
  });

  it.each([
    ["SourcePodNotFound", { sourcePod: "nope" }],
    ["TargetNodeNotFound", { targetNode: "node-z" }],
    ["TargetIsSource", { targetNode: "node-a" }],
    ["ContainerNotFound", { containerName: "sidecar" }],
    ["StrategyNotSupported", { migrationStrategy: "Sequential" as const }],
  ])("fails with %s", async (reason, spec) => {
    const w = setup("Deployment", spec);
    await drive(w);
    const s = statusOf(w);
    expect(s.phase).toBe("Failed");
    expect(s.failure).toMatchObject({ phase: "Pending", reason });
    expect(w.checkpointer.requests).toHaveLength(0);
    expect(w.events.events.some((e) => e.type === "Warning" && e.reason === reason)).toBe(true);
  });

  it("refuses ShadowPod for a StatefulSet pod", async () => {
    const w = setup("StatefulSet", { migrationStrategy: "ShadowPod" });
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("StrategyNotSupported");
  });

  it("refuses a NotReady or cordoned target", async () => {
    const w = setup("Deployment");
    w.cluster.nodes.get("node-b")!.status = { conditions: [{ type: "Ready", status: "False" }] };
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("TargetNodeNotReady");
    const w2 = setup("Deployment");
    w2.cluster.nodes.get("node-b")!.spec = { unschedulable: true };
    await drive(w2);
    expect(statusOf(w2).failure?.reason).toBe("TargetNodeUnschedulable");
  });

  it("picks a Ready node the pod fits when no target is given", async () => {
    const w = setup("Deployment", { targetNode: undefined });
    w.cluster.nodes.get("node-b")!.spec = { taints: [{ key: "gpu", effect: "NoSchedule" }] };
    await drive(w);
    expect(statusOf(w).targetNode).toBe("node-c");
    expect(statusOf(w).phase).toBe("Completed");
  });

  it("waits for a source pod that is not running yet, within the deadline", async () => {
    const w = setup("Deployment");
    w.cluster.pod(w.source.metadata!.name!)!.status = { phase: "Pending" };
    const r = await w.reconciler.reconcile({ namespace: "default", name: "mig" });
    expect(r.requeueAfterMs).toBe(w.deps.settings.phaseTimeoutMs.Pending);
    w.clock.advance(w.deps.settings.phaseTimeoutMs.Pending + 1);
    await drive(w, { kubelet: false });
    expect(statusOf(w).failure?.reason).toBe("PendingTimeout");
  });
});

describe("Checkpointing", () => {
  it("sets up the replay queue before the checkpoint", async () => {
    const w = setup("Deployment");
    await drive(w);
    const order = [...w.messaging.faults.calls, ...w.checkpointer.faults.calls];
    expect(order).toContain("prepareReplay");
    const all = [w.messaging.faults.calls.indexOf("prepareReplay")];
    expect(all[0]).toBeGreaterThanOrEqual(0);
    expect(statusOf(w).replay?.replayQueue).toMatch(/^ms2m\.replay\./);
  });

  it("never checkpoints twice when the result was lost: asks the agent instead", async () => {
    const w = setup("Deployment");
    w.checkpointer.faults.inject("checkpoint:after", new Error("connection reset"));
    const errors = await drive(w);
    expect(errors).toHaveLength(1);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.checkpointer.requests).toHaveLength(1);
    expect(w.checkpointer.faults.count("lookup")).toBe(1);
  });

  it("records the checkpoint route with the intent and looks up on that route after a lost answer", async () => {
    const w = setup("Deployment");
    const routes: string[] = [];
    w.checkpointer.routeFor = async () => {
      routes.push("asked");
      return "NodeProxy";
    };
    const lookups: (string | undefined)[] = [];
    const lookup = w.checkpointer.lookup.bind(w.checkpointer);
    w.checkpointer.lookup = async (r) => {
      lookups.push(r.via);
      return lookup(r);
    };
    w.checkpointer.faults.inject("checkpoint:after", new Error("connection reset"));
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(statusOf(w).containers?.[0]?.checkpointVia).toBe("NodeProxy");
    expect(w.checkpointer.requests.map((r) => r.via)).toEqual(["NodeProxy"]);
    expect(lookups).toEqual(["NodeProxy"]);
    expect(routes).toHaveLength(1);
  });

  it("fails (and rolls back) when the outcome of a lost checkpoint cannot be known", async () => {
    const w = setup("Deployment");
    w.checkpointer.lookupAnswer = "unknown";
    w.checkpointer.faults.inject("checkpoint:after", new Error("connection reset"));
    await drive(w);
    const s = statusOf(w);
    expect(s.failure?.reason).toBe("CheckpointOutcomeUnknown");
    expect(w.checkpointer.requests).toHaveLength(1);
    expect(w.messaging.queues.size).toBe(0);
    expect(s.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
  });

  it("fails at once on a definite kubelet refusal", async () => {
    const w = setup("Deployment");
    w.checkpointer.faults.inject(
      "checkpoint",
      new Ms2mError("InternalError", "CRIU dump failed", { retriable: false }),
    );
    await drive(w);
    expect(statusOf(w).failure).toMatchObject({ phase: "Checkpointing", reason: "CheckpointFailed" });
    expect(w.messaging.rollbacks).toEqual(["web-7d9f-abcde"]);
  });

  it("retries a busy agent (429) within 4–6 s, however long the backoff has grown", async () => {
    const w = setup("Deployment");
    const busy = () => new Ms2mError("TooManyRequests", "agent busy: 4 transfers in flight");
    w.checkpointer.faults.inject("checkpoint", busy);
    const errors = await drive(w, { maxRounds: 1 });
    expect(errors[0]).toBeInstanceOf(RetryAfter);
    const cap = (errors[0] as RetryAfter).backoffCapMs;
    expect(cap).toBe(busyBackoffCapMs(w.cluster.migration("mig")));
    expect(cap).toBeGreaterThanOrEqual(4000);
    expect(cap).toBeLessThan(6000);
    // Other failures keep the work queue's backoff.
    w.messaging.faults.inject("prepareReplay", () => new Ms2mError("ServiceUnavailable", "ECONNREFUSED"));
    const more = await drive(w, { maxRounds: 1 });
    expect((more[0] as RetryAfter).backoffCapMs).toBeUndefined();
  });

  it("retries an unreachable broker, then fails at the deadline and removes the queue", async () => {
    const w = setup("Deployment");
    const down = () => new Ms2mError("ServiceUnavailable", "ECONNREFUSED");
    w.messaging.faults.inject("prepareReplay", down, down, down);
    const errors = await drive(w, { maxRounds: 3 });
    expect(errors.length).toBe(3);
    expect(errors[0]).toBeInstanceOf(RetryAfter);
    expect(phaseOf(w)).toBe("Checkpointing");
    for (let i = 0; i < 50; i++) w.messaging.faults.inject("prepareReplay", down);
    w.clock.advance(w.deps.settings.phaseTimeoutMs.Checkpointing);
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("CheckpointingTimeout");
    expect(w.checkpointer.requests).toHaveLength(0);
  });

  it("fails when the source pod disappears", async () => {
    const w = setup("Deployment");
    await drive(w, { maxRounds: 1 }); // Pending done, finalizer on
    w.cluster.pods.delete(`default/${w.source.metadata!.name}`);
    w.cluster.migration("mig").status!.phase = "Checkpointing"; // as if stopped right after Pending
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("SourcePodLost");
  });
});

describe("Transferring", () => {
  it("retries a transient agent error and fails on a permanent one", async () => {
    const w = setup("Deployment", { transferMode: "Direct", checkpointImageRepository: undefined });
    w.transfer.faults.inject("transfer", new Ms2mError("ServiceUnavailable", "agent restarting"));
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.transfer.requests[0]).toMatchObject({
      mode: "Direct",
      sourceNode: "node-a",
      targetNode: "node-b",
    });
    expect(w.cluster.pod(statusOf(w).targetPod!)!.spec!.containers[0]!.imagePullPolicy).toBe("Never");

    const w2 = setup("Deployment");
    w2.transfer.faults.inject("transfer", new Ms2mError("Forbidden", "registry denied push"));
    await drive(w2);
    expect(statusOf(w2).failure?.reason).toBe("TransferFailed");
    expect(w2.transfer.cleaned.length).toBeGreaterThan(0);
  });
});

describe("Restoring", () => {
  it("fails when the restored container cannot start and removes the target", async () => {
    const w = setup("Deployment");
    await drive(w, { maxRounds: 1, kubelet: false });
    const target = statusOf(w).targetPod!;
    w.cluster.pod(target)!.status = {
      phase: "Pending",
      containerStatuses: [
        {
          name: "app",
          image: "",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ErrImagePull", message: "not found" } },
        },
      ],
    };
    await drive(w, { kubelet: false });
    expect(statusOf(w).failure).toMatchObject({ phase: "Restoring", reason: "RestoreFailed" });
    expect(w.cluster.pod(target)).toBeUndefined();
    const src = w.cluster.pod(w.source.metadata!.name!)!;
    expect(src.metadata?.deletionTimestamp).toBeUndefined();
    expect(controllerOf(src)?.uid).toBe("rs-uid");
  });

  it("fails when the target node goes NotReady", async () => {
    const w = setup("Deployment");
    await drive(w, { maxRounds: 1, kubelet: false });
    w.cluster.nodes.get("node-b")!.status = { conditions: [{ type: "Ready", status: "Unknown" }] };
    await drive(w, { kubelet: false });
    expect(statusOf(w).failure?.reason).toBe("TargetNodeNotReady");
  });

  it("rolls a Sequential source back into its StatefulSet when it fails before the deletion", async () => {
    const w = setup("StatefulSet");
    w.cluster.faults.inject("deletePod", new Ms2mError("Forbidden", "denied"));
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("Forbidden");
    const src = w.cluster.pod("db-1")!;
    expect(src.metadata?.uid).toBe(w.source.metadata?.uid);
    expect(src.metadata?.labels?.app).toBe("db");
    expect(src.metadata?.finalizers ?? []).not.toContain(HANDOVER_FINALIZER);
  });
});

describe("Replaying", () => {
  it("fails when the target pod is deleted during replay and removes the replay queue", async () => {
    const w = setup("Deployment");
    w.messaging.drained = false;
    await drive(w, { maxRounds: 12 });
    expect(phaseOf(w)).toBe("Replaying");
    w.cluster.pods.delete(`default/${statusOf(w).targetPod}`);
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("TargetPodLost");
    expect(w.messaging.queues.size).toBe(0);
    expect(w.cluster.pod(w.source.metadata!.name!)?.metadata?.deletionTimestamp).toBeUndefined();
  });

  it("completes only with the restored process in the target: RestoreVerified=True", async () => {
    const w = setup("Deployment");
    await drive(w);
    expect(phaseOf(w)).toBe("Completed");
    const c = statusOf(w).conditions?.find((x) => x.type === "RestoreVerified");
    expect(c?.status).toBe("True");
    expect(c?.message).toContain(w.source.metadata!.name!);
  });

  it("rolls back a target that started fresh instead of being restored (onRestoreFailure: Rollback)", async () => {
    const w = setup("Deployment");
    w.messaging.restoredFrom = () => undefined; // the runtime fell back to a cold start
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("RestoreNotVerified");
    expect(statusOf(w).failure?.phase).toBe("Replaying");
    expect(statusOf(w).failure?.message).toMatch(
      /started fresh instead of being restored.*onRestoreFailure: ColdStart/,
    );
    // Rolled back: the source serves as before, the target and the replay queue are gone.
    expect(w.cluster.pod(w.source.metadata!.name!)?.metadata?.deletionTimestamp).toBeUndefined();
    const live = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
    expect(live.map((p) => p.metadata?.name)).toEqual([w.source.metadata!.name!]);
    expect(w.messaging.queues.size).toBe(0);
    expect(w.messaging.rollbacks).toHaveLength(1);
  });

  it("refuses a process restored from another pod than the source (another incarnation)", async () => {
    const w = setup("Deployment");
    w.messaging.restoredFrom = () => ({ pod: w.source.metadata!.name!, uid: "an-earlier-incarnation" });
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("RestoreNotVerified");
    expect(statusOf(w).failure?.message).toContain("an-earlier-incarnation");
  });

  it("keeps a cold-started target with onRestoreFailure: ColdStart, and says so", async () => {
    const w = setup("Deployment", { onRestoreFailure: "ColdStart" });
    w.messaging.restoredFrom = () => undefined;
    await drive(w);
    expect(phaseOf(w)).toBe("Completed");
    const c = statusOf(w).conditions?.find((x) => x.type === "RestoreVerified");
    expect(c).toMatchObject({ status: "False", reason: "ColdStart" });
    expect(w.events.events.filter((e) => e.reason === "ColdStart")).toHaveLength(1);
    expect(w.messaging.cutovers).toHaveLength(1);
  });

  it("waits for a PROGRESS report, re-checking the queue only at the long safety interval", async () => {
    const w = setup("Deployment");
    w.messaging.drained = false;
    await drive(w, { maxRounds: 12 });
    const r = await w.reconciler.reconcile({ namespace: "default", name: "mig" });
    expect(r.requeueAfterMs).toBe(w.deps.settings.replayRecheckMs);
    expect(w.deps.settings.replayRecheckMs).toBeGreaterThanOrEqual(1000);
    expect(w.messaging.started).toHaveLength(1);
  });
});

describe("cancellation", () => {
  it.each(["Checkpointing", "Restoring", "Replaying"] as const)(
    "deleting the migration in %s rolls back",
    async (phase) => {
      const w = setup("Deployment");
      // Each phase is held where the case deletes the migration: the agent refuses the
      // checkpoint for now (429, retried), the kubelet never starts the target, the replay
      // queue never drains.
      if (phase === "Checkpointing")
        w.checkpointer.faults.inject(
          "checkpoint",
          ...Array.from({ length: 100 }, () => new Ms2mError("TooManyRequests", "agent busy")),
        );
      w.messaging.drained = false;
      await drive(w, { maxRounds: 30, kubelet: phase !== "Restoring", between: () => undefined });
      // Walk until the phase of interest.
      w.cluster.migration("mig");
      for (let i = 0; i < 40 && phaseOf(w) !== phase; i++) {
        await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch(() => undefined);
        if (phase !== "Restoring") playKubelet(w);
      }
      expect(phaseOf(w)).toBe(phase);
      w.cluster.deleteMigration("mig");
      await drive(w);
      expect(w.cluster.migrations.has("default/mig")).toBe(false);
      const pods = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
      expect(pods.map((p) => p.metadata?.name)).toEqual([w.source.metadata!.name]);
      expect(w.messaging.queues.size).toBe(0);
      expect(w.events.reasons()).toContain("Cancelled");
    },
  );

  it("deleting the migration in Finalizing rolls forward to the hand-over", async () => {
    const w = setup("Deployment");
    // The ReplicaSet adopts the target only later: Finalizing waits for it.
    const adopt = w.cluster.onPodWrite;
    w.cluster.onPodWrite = undefined;
    for (let i = 0; i < 60 && phaseOf(w) !== "Finalizing"; i++) {
      await w.reconciler.reconcile({ namespace: "default", name: "mig" }).catch(() => undefined);
      playKubelet(w);
    }
    expect(phaseOf(w)).toBe("Finalizing");
    w.cluster.deleteMigration("mig");
    // Now the ReplicaSet adopts the released target.
    w.cluster.onPodWrite = adopt;
    adopt?.(w.cluster.pod(statusOf(w).targetPod!)!);
    await drive(w);
    expect(w.cluster.migrations.has("default/mig")).toBe(false);
    const pods = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
    expect(pods.map((p) => p.metadata?.name)).not.toContain(w.source.metadata!.name);
    expect(pods).toHaveLength(1);
    expect(w.events.reasons()).not.toContain("Cancelled");
  });

  it("deleting a Completed migration leaves the workload untouched", async () => {
    const w = setup("Deployment");
    await drive(w);
    const before = structuredClone([...w.cluster.pods.values()]);
    w.cluster.deleteMigration("mig");
    await drive(w);
    expect(w.cluster.migrations.has("default/mig")).toBe(false);
    expect([...w.cluster.pods.values()]).toEqual(before);
  });
});

describe("status writes", () => {
  it("a Conflict is retried without side effects", async () => {
    const w = setup("Deployment");
    w.cluster.faults.inject("updateMigrationStatus", new Ms2mError("Conflict", "modified"));
    const errors = await drive(w);
    expect(errors).toHaveLength(1);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.checkpointer.requests).toHaveLength(1);
  });
});

describe("crash at any instant", () => {
  for (const kind of ["Deployment", "StatefulSet", "Bare"] as const) {
    it(`${kind}: resumes to completion with one checkpoint and one target pod`, async () => {
      // Count the calls of a clean run, then crash at each of them in turn.
      const probe = setup(kind);
      crash.at = 0;
      crash.count = 0;
      await drive(probe);
      const total = crash.count;
      expect(total).toBeGreaterThan(20);
      try {
        for (let at = 1; at <= total; at++) {
          const w = setup(kind);
          crash.count = 0;
          crash.at = at;
          await drive(w, { maxRounds: 120 });
          crash.at = 0;
          w.deps.sent.clear();
          await drive(w, { maxRounds: 120 });
          const s = statusOf(w);
          expect(s.phase, `crash at call ${at}: ${JSON.stringify(s.failure)}`).toBe("Completed");
          expect(w.checkpointer.requests, `crash at call ${at}`).toHaveLength(1);
          const live = [...w.cluster.pods.values()].filter((p) => !p.metadata?.deletionTimestamp);
          expect(live.map((p) => p.metadata?.name)).toEqual([s.targetPod]);
        }
      } finally {
        crash.at = 0;
      }
    });
  }
});
