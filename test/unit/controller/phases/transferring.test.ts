import { describe, expect, it } from "vitest";
import type { ArtifactRef, TransferPort } from "../../../../src/controller/ports.ts";

describe("Transferring with a transfer Job", () => {
  it("waits for the Job (no error, no backoff), records one Event, then completes", async () => {
    const { setup, drive } = await import("../scenario.ts");
    const { TransferInProgress } = await import("../../../../src/controller/adapters/transfer-job/jobs.ts");
    const w = setup("Deployment");
    const real = w.transfer.transfer.bind(w.transfer);
    const calls = new Map<string, number>();
    w.transfer.transfer = async (req) => {
      const n = (calls.get(req.key) ?? 0) + 1;
      calls.set(req.key, n);
      if (n < 4) throw new TransferInProgress("ms2m-transfer-x-app", n === 1, "running");
      return real(req);
    };
    const waits: (number | undefined)[] = [];
    const reconcile = w.reconciler.reconcile.bind(w.reconciler);
    w.reconciler.reconcile = async (req, scope) => {
      const r = await reconcile(req, scope);
      if (w.cluster.migrations.get("default/mig")?.status?.phase === "Transferring")
        waits.push(r.requeueAfterMs);
      return r;
    };
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expect(w.cluster.migrations.get("default/mig")?.status?.phase).toBe("Completed");
    expect(waits.length).toBeGreaterThanOrEqual(3);
    expect(waits.every((ms) => ms !== undefined && ms <= 5000)).toBe(true);
    expect(w.events.reasons().filter((r) => r === "TransferJobStarted")).toHaveLength(1);
  });

  it("cleanup handed to Jobs: a Normal Event each, the artifacts name their pod and container", async () => {
    const { setup, drive } = await import("../scenario.ts");
    const w = setup("Deployment");
    const seen: ArtifactRef[] = [];
    (w.transfer as TransferPort).cleanup = (artifacts) => {
      seen.push(...artifacts);
      return Promise.resolve({
        warnings: [],
        started: ["Job ms2m-cleanup-x-node-a deletes checkpoint archive a"],
      });
    };
    expect(await drive(w)).toEqual([]);
    expect(w.cluster.migrations.get("default/mig")?.status?.phase).toBe("Completed");
    const cleanupEvents = w.events.events.filter((e) => e.reason === "CheckpointCleanupJob");
    expect(cleanupEvents[0]).toEqual({
      type: "Normal",
      reason: "CheckpointCleanupJob",
      message: "Job ms2m-cleanup-x-node-a deletes checkpoint archive a",
    });
    expect(w.events.reasons()).not.toContain("CheckpointArtifactKept");
    const m = w.cluster.migrations.get("default/mig")!;
    expect(seen.length).toBeGreaterThan(0);
    for (const a of seen) {
      expect(a.namespace).toBe("default");
      expect(a.pod).toBe(m.spec.sourcePod);
      expect(m.status?.containers?.map((c) => c.name)).toContain(a.container);
    }
  });

  it("a refusal from the Job fails the migration with TransferFailed and rolls back", async () => {
    const { setup, drive } = await import("../scenario.ts");
    const { Ms2mError } = await import("../../../../src/common/errors.ts");
    const w = setup("Deployment");
    w.transfer.transfer = () =>
      Promise.reject(
        new Ms2mError("Forbidden", "transfer Job j on node-a failed: Forbidden: registry push: HTTP 403", {
          retriable: false,
        }),
      );
    await drive(w);
    const m = w.cluster.migrations.get("default/mig");
    expect(m?.status?.phase).toBe("Failed");
    expect(m?.status?.failure).toMatchObject({ phase: "Transferring", reason: "TransferFailed" });
    expect(m?.status?.failure?.message).toContain("HTTP 403");
    expect(w.transfer.cleaned.length).toBeGreaterThan(0);
  });
});
