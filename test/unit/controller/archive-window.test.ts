// artifactsOf (src/controller/artifacts.ts) for a checkpoint requested through the API server's
// node proxy whose answer was lost: the rollback hands the transfer port an archive window on the
// source node (the kubelet keeps no record, so the archive is found by name and time); a recorded
// result or the agent's route never gives one. archiveWindowOf's bounds.
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { ARCHIVE_WINDOW_MARGIN_SECONDS, archiveWindowOf } from "../../../src/controller/artifacts.ts";
import { MAX_CLEANUP_SETTLE_SECONDS, cleanupRequestSchema } from "../../../src/transfer/job.ts";
import { drive, setup } from "./scenario.ts";

const statusOf = (w: ReturnType<typeof setup>) => w.cluster.migration("mig").status!;

describe("artifactsOf: a node-proxy checkpoint without an answer", () => {
  it("rolls back with an archive window on the source node around the request", async () => {
    const w = setup("Deployment");
    w.checkpointer.routeFor = async () => "NodeProxy";
    w.checkpointer.lookupAnswer = "unknown";
    w.checkpointer.faults.inject("checkpoint:after", new Error("connection reset"));
    await drive(w);
    const s = statusOf(w);
    expect(s.failure?.reason).toBe("CheckpointOutcomeUnknown");
    const c = s.containers?.[0];
    expect(c?.checkpointVia).toBe("NodeProxy");
    expect(c?.checkpointPath).toBeUndefined();
    expect(w.transfer.cleaned).toHaveLength(1);
    const a = w.transfer.cleaned[0]!;
    expect(a).toMatchObject({
      sourceNode: "node-a",
      namespace: "default",
      pod: "web-7d9f-abcde",
      container: "app",
    });
    expect(a.archivePath).toBeUndefined();
    const at = Date.parse(c!.checkpointRequestedAt!);
    const margin = ARCHIVE_WINDOW_MARGIN_SECONDS * 1000;
    const timeout = w.deps.settings.checkpointTimeoutSeconds * 1000;
    const win = a.archiveWindow!;
    expect(Date.parse(win.from)).toBe(at - margin);
    // The rollback came a few simulated ms later: the window ends then (+ margin), not at the timeout.
    expect(Date.parse(win.to)).toBeGreaterThanOrEqual(at + margin);
    expect(Date.parse(win.to)).toBeLessThan(at + margin + 1000);
    expect(Date.parse(win.settleUntil)).toBe(Date.parse(win.to) + timeout);
    // What the planner puts into the cleanup Job passes its schema.
    expect(
      cleanupRequestSchema.safeParse({
        migration: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        namespace: a.namespace,
        pod: a.pod,
        archiveWindows: [{ container: a.container, ...win }],
      }).success,
    ).toBe(true);
  });

  it("a definite refusal through the node proxy: a window too (nothing recorded what the kubelet did)", async () => {
    const w = setup("Deployment");
    w.checkpointer.routeFor = async () => "NodeProxy";
    w.checkpointer.faults.inject(
      "checkpoint",
      new Ms2mError("InternalError", "the container runtime failed to checkpoint", { retriable: false }),
    );
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("CheckpointFailed");
    expect(w.transfer.cleaned.map((a) => a.archiveWindow !== undefined)).toEqual([true]);
  });

  it("a recorded result through the node proxy: the named archive, no window", async () => {
    const w = setup("Deployment");
    w.checkpointer.routeFor = async () => "NodeProxy";
    await drive(w);
    expect(statusOf(w).phase).toBe("Completed");
    expect(w.transfer.cleaned).toHaveLength(1);
    expect(w.transfer.cleaned[0]?.archivePath).toMatch(/^\/var\/lib\/kubelet\/checkpoints\/checkpoint-/);
    expect(w.transfer.cleaned[0]?.archiveWindow).toBeUndefined();
  });

  it("the agent's route without a result: no window (the agent keeps the record)", async () => {
    const w = setup("Deployment");
    w.checkpointer.lookupAnswer = "unknown";
    w.checkpointer.faults.inject("checkpoint:after", new Error("connection reset"));
    await drive(w);
    expect(statusOf(w).failure?.reason).toBe("CheckpointOutcomeUnknown");
    expect(statusOf(w).containers?.[0]?.checkpointVia).toBe("Agent");
    expect(w.transfer.cleaned).toHaveLength(1);
    expect(w.transfer.cleaned[0]?.archiveWindow).toBeUndefined();
  });
});

describe("artifactsOf: a Registry transfer without a recorded result", () => {
  const refused = () => new Ms2mError("ServiceUnavailable", "push: connection reset");

  it("names the image the push may have made when the outcome is unknown (a deadline)", async () => {
    const w = setup("Deployment");
    w.transfer.faults.inject("transfer", ...Array.from({ length: 200 }, refused));
    await drive(w, { between: () => w.clock.advance(20_000), maxRounds: 200 });
    const s = statusOf(w);
    expect(s.failure?.reason).toBe("TransferringTimeout");
    expect(s.containers?.[0]?.checkpointImage).toBeUndefined();
    const uid = w.cluster.migration("mig").metadata!.uid!;
    // The name the transfer would have pushed: fixed by the migration's UID and the container.
    expect(w.transfer.cleaned.map((a) => a.image)).toEqual([
      `registry.test/ckpt:app-${uid.replaceAll("-", "").slice(0, 12)}`,
    ]);
  });

  it("a definite refusal of the push, Direct, or no checkpoint yet: no image named", async () => {
    const denied = setup("Deployment");
    denied.transfer.faults.inject("transfer", new Ms2mError("Forbidden", "registry denied the manifest"));
    await drive(denied);
    expect(statusOf(denied).failure?.reason).toBe("TransferFailed");
    expect(denied.transfer.cleaned.map((a) => a.image)).toEqual([undefined]);
    const direct = setup("Deployment", { transferMode: "Direct", checkpointImageRepository: undefined });
    direct.transfer.faults.inject("transfer", ...Array.from({ length: 200 }, refused));
    await drive(direct, { between: () => direct.clock.advance(20_000), maxRounds: 200 });
    expect(statusOf(direct).failure?.reason).toBe("TransferringTimeout");
    expect(direct.transfer.cleaned.map((a) => a.image)).toEqual([undefined]);
    const early = setup("Deployment");
    early.checkpointer.faults.inject(
      "checkpoint",
      new Ms2mError("InternalError", "criu failed", { retriable: false }),
    );
    await drive(early);
    expect(statusOf(early).failure?.reason).toBe("CheckpointFailed");
    expect(early.transfer.cleaned.map((a) => a.image)).toEqual([undefined]);
  });
});

describe("archiveWindowOf", () => {
  const at = "2026-01-01T00:00:00.000Z";
  const t = Date.parse(at);
  const s = (n: number) => n * 1000;

  it("[requestedAt − margin, min(requestedAt + timeout, now) + margin]; settled a timeout later", () => {
    expect(archiveWindowOf(at, 120, t + s(5))).toEqual({
      from: "2025-12-31T23:59:50.000Z",
      to: "2026-01-01T00:00:15.000Z",
      settleUntil: "2026-01-01T00:02:15.000Z",
    });
    // Cleaned up long after: the window ends at the timeout (+ margin).
    expect(archiveWindowOf(at, 120, t + s(3600))).toEqual({
      from: "2025-12-31T23:59:50.000Z",
      to: "2026-01-01T00:02:10.000Z",
      settleUntil: "2026-01-01T00:04:10.000Z",
    });
  });

  it("a controller clock behind the request never makes the window empty; the wait is bounded", () => {
    const back = archiveWindowOf(at, 60, t - s(3600))!;
    expect(back.to).toBe(back.from);
    const long = archiveWindowOf(at, 7200, t + s(7200))!;
    expect(Date.parse(long.settleUntil) - Date.parse(long.to)).toBe(s(MAX_CLEANUP_SETTLE_SECONDS));
    expect(archiveWindowOf("not a time", 60, t)).toBeUndefined();
  });
});
