import { describe, expect, it } from "vitest";
import type { PhaseTiming } from "../../../src/api/v1alpha1/index.ts";
import { MigrationTrace, unionLength } from "../../../src/controller/timeline/trace.ts";
import { timelineSummary } from "../../../src/controller/timeline/summary.ts";
import { parseHeaders, toOtlp, tracesUrl } from "../../../src/controller/timeline/otlp.ts";
import { playKubelet, setup } from "./scenario.ts";

describe("MigrationTrace", () => {
  it("counts overlapping intervals once", () => {
    expect(unionLength([])).toBe(0);
    expect(
      unionLength([
        [0, 10],
        [5, 15],
        [20, 25],
        [21, 22],
      ]),
    ).toBe(20);
  });

  it("splits a window into external waits and the controller's own remainder", () => {
    let t = 1000;
    const trace = new MigrationTrace("0a1b2c3d-0000-4000-8000-000000000001", () => t);
    trace.record("kube.getPod", "api", 1000, 1002);
    trace.record("checkpoint.checkpoint", "checkpoint", 1002, 1302);
    // Two concurrent agent calls: their union counts.
    trace.record("transfer.cleanup", "transfer", 1302, 1352);
    trace.record("transfer.cleanup", "transfer", 1310, 1340);
    trace.record("kube.updateMigrationStatus", "api", 1352, 1356);
    // Half outside the window: clipped.
    trace.record("broker.cutover", "broker", 1390, 1500);
    t = 1400;
    const b = trace.breakdown(1000, 1400);
    expect(b.checkpointMillis).toBe(300);
    expect(b.transferMillis).toBe(50);
    expect(b.brokerMillis).toBe(10);
    expect(b.apiMillis).toBe(6);
    expect(b.apiCalls).toBe(2);
    expect(b.externalMillis).toBe(360);
    expect(b.controllerMillis).toBe(40);
    expect(b.controllerMillis + b.externalMillis).toBe(400);
    expect(b.partial).toBeUndefined();
    // A phase that began before this process saw the migration is partial.
    expect(trace.breakdown(900, 1400).partial).toBe(true);
  });

  it("tells a wait for an event from a wait on its own timer, and counts the queue as its own", () => {
    let t = 0;
    const trace = new MigrationTrace("u", () => t);
    trace.waitingSince = 100;
    trace.reconcileStarted({ queuedAt: 400, byTimer: false }, 410);
    trace.waitingSince = 500;
    trace.reconcileStarted({ queuedAt: 750, byTimer: true }, 760);
    // An event that came while the previous reconcile ran: no wait, only the queue.
    trace.waitingSince = 800;
    trace.reconcileStarted({ queuedAt: 790, byTimer: false }, 805);
    t = 1000;
    const b = trace.breakdown(0, 1000);
    expect(b.watchMillis).toBe(300);
    expect(b.timerMillis).toBe(250);
    expect(b.queueMillis).toBe(25);
    expect(b.externalMillis).toBe(300);
    expect(b.controllerMillis).toBe(700);
  });
});

describe("MigrationTrace: the critical path of a wait", () => {
  it("keeps waiting through reconciles that only read, and counts their time inside the wait", () => {
    let t = 0;
    const trace = new MigrationTrace("u", () => t);
    // Reconcile 1 creates the target pod (a write) and waits for it to become Ready.
    trace.reconcileStarted(undefined, 0);
    trace.mutations++;
    trace.record("kube.createPod", "api", 0, 10);
    trace.reconcileEnded(true, 10);
    // Reconcile 2: a pod event that is not Ready yet; it reads and waits again.
    trace.reconcileStarted({ queuedAt: 100, byTimer: false }, 102);
    trace.record("kube.getPod", "api", 102, 110);
    trace.reconcileEnded(true, 110);
    // Reconcile 3: Ready; it writes the phase change.
    trace.reconcileStarted({ queuedAt: 300, byTimer: false }, 305);
    trace.mutations++;
    trace.record("kube.updateMigrationStatus", "api", 305, 315);
    trace.reconcileEnded(true, 315);
    t = 315;
    const b = trace.breakdown(0, 315);
    // One wait, 10..300: reconcile 2 and its read are inside it.
    expect(b.watchMillis).toBe(290);
    expect(b.queueMillis).toBe(5);
    expect(b.externalMillis).toBe(290);
    expect(b.controllerMillis).toBe(25);
    expect(trace.spans.filter((x) => x.kind === "watch")).toHaveLength(1);
  });

  it("ends the wait at a reconcile that acted, even if it waits again", () => {
    let t = 0;
    const trace = new MigrationTrace("u", () => t);
    trace.reconcileStarted(undefined, 0);
    trace.reconcileEnded(true, 5);
    trace.reconcileStarted({ queuedAt: 50, byTimer: true }, 50);
    trace.mutations++;
    trace.reconcileEnded(true, 60);
    trace.reconcileStarted({ queuedAt: 90, byTimer: false }, 90);
    trace.reconcileEnded(false, 95);
    t = 95;
    const b = trace.breakdown(0, 95);
    expect(b.timerMillis).toBe(45);
    expect(b.watchMillis).toBe(30);
    expect(trace.waitingSince).toBeUndefined();
  });
});

describe("timeline of a migration (fake ports, fake clock)", () => {
  it("writes a breakdown per phase that adds up to its duration, and a Timeline Event", async () => {
    const w = setup("Deployment");
    // The kubelet takes 300 ms to checkpoint and the agent 200 ms to send: external time.
    const checkpoint = w.checkpointer.checkpoint.bind(w.checkpointer);
    w.checkpointer.checkpoint = async (req) => {
      w.clock.advance(300);
      return checkpoint(req);
    };
    const transfer = w.transfer.transfer.bind(w.transfer);
    w.transfer.transfer = async (req) => {
      w.clock.advance(200);
      return transfer(req);
    };
    for (let round = 0; round < 60; round++) {
      // Each reconcile is brought by an event queued 10 ms after the previous one ended.
      await w.reconciler
        .reconcile(
          { namespace: "default", name: "mig" },
          {
            log: w.deps.log,
            reconcileId: String(round),
            admission: { queuedAt: w.clock.now(), byTimer: false },
          },
        )
        .catch(() => undefined);
      const phase = w.cluster.migration("mig").status?.phase;
      if (phase === "Completed" || phase === "Failed") break;
      playKubelet(w);
      w.clock.advance(10);
    }
    const s = w.cluster.migration("mig").status!;
    expect(s.phase).toBe("Completed");
    const timings = s.phaseTimings!.filter((t) => t.phase !== "Completed");
    expect(timings.map((t) => t.phase)).toEqual([
      "Pending",
      "Checkpointing",
      "Transferring",
      "Restoring",
      "Replaying",
      "Finalizing",
    ]);
    for (const t of timings) {
      expect(t.breakdown, t.phase).toBeDefined();
      expect(t.breakdown!.controllerMillis + t.breakdown!.externalMillis, t.phase).toBe(t.durationMillis);
    }
    expect(timings.reduce((n, t) => n + t.breakdown!.apiCalls, 0)).toBeGreaterThan(10);
    const by = (p: string) => timings.find((t) => t.phase === p)!.breakdown!;
    expect(by("Checkpointing").checkpointMillis).toBe(300);
    expect(by("Transferring").transferMillis).toBe(200);
    // Restoring waits for the kubelet to start the target: watch events.
    expect(by("Restoring").watchMillis).toBeGreaterThan(0);
    const timeline = w.events.events.find((e) => e.reason === "Timeline");
    expect(timeline?.message).toMatch(/^total \d+ms, controller \d+ms \(\d+ API calls, \d+ms\); Pending /);
  });
});

describe("timeline summary", () => {
  it("adds up the phases and flags a partial trace", () => {
    const timings: PhaseTiming[] = [
      {
        phase: "Pending",
        startTime: "2026-01-01T00:00:00.000Z",
        durationMillis: 20,
        breakdown: { controllerMillis: 15, externalMillis: 5, apiCalls: 4, apiMillis: 8 },
      },
      {
        phase: "Checkpointing",
        startTime: "2026-01-01T00:00:00.020Z",
        durationMillis: 12_000,
        breakdown: { controllerMillis: 30, externalMillis: 11_970, apiCalls: 3, apiMillis: 6, partial: true },
      },
    ];
    expect(timelineSummary({ phaseTimings: timings })).toBe(
      "total 12.0s, controller 45ms (7 API calls, 14ms), partial: the controller restarted; " +
        "Pending 20ms (own 15ms), Checkpointing 12.0s (own 30ms)",
    );
    expect(timelineSummary({ phaseTimings: [{ phase: "Pending", startTime: "2026-01-01T00:00:00Z" }] })).toBe(
      undefined,
    );
  });
});

describe("OTLP export", () => {
  it("reads the standard environment variables", () => {
    expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318/" })).toBe(
      "http://127.0.0.1:4318/v1/traces",
    );
    expect(
      tracesUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/custom",
      }),
    ).toBe("http://b:4318/custom");
    expect(tracesUrl({})).toBeUndefined();
    expect(parseHeaders("authorization=Bearer%20abc, x-tenant = t1,broken")).toEqual({
      authorization: "Bearer abc",
      "x-tenant": "t1",
    });
  });

  it("nests the operations under their phase under one root span per migration", () => {
    const trace = new MigrationTrace("0a1b2c3d-0000-4000-8000-000000000001", () => 0);
    const t0 = Date.parse("2026-01-01T00:00:00.000Z");
    trace.record("kube.getPod", "api", t0 + 1, t0 + 3);
    trace.record("checkpoint.checkpoint", "checkpoint", t0 + 12, t0 + 40, "kubelet said no");
    const body = toOtlp(
      {
        apiVersion: "migration.ms2m.io/v1alpha1",
        kind: "StatefulMigration",
        metadata: { name: "mig", namespace: "default", uid: "0a1b2c3d-0000-4000-8000-000000000001" },
        spec: {} as never,
        status: {
          phase: "Completed",
          completionTime: "2026-01-01T00:00:00.050Z",
          phaseTimings: [
            { phase: "Pending", startTime: "2026-01-01T00:00:00.000Z", endTime: "2026-01-01T00:00:00.010Z" },
            {
              phase: "Checkpointing",
              startTime: "2026-01-01T00:00:00.010Z",
              endTime: "2026-01-01T00:00:00.050Z",
            },
          ],
        },
      },
      trace,
      "ms2m-controller",
    );
    const spans = body.resourceSpans[0]!.scopeSpans[0]!.spans;
    expect(spans).toHaveLength(5);
    const root = spans[0]!;
    expect(root.traceId).toBe("0a1b2c3d000040008000000000000001");
    expect(root.parentSpanId).toBeUndefined();
    expect(root.startTimeUnixNano).toBe(`${t0}000000`);
    const pending = spans.find((s) => s.name === "Pending")!;
    const checkpointing = spans.find((s) => s.name === "Checkpointing")!;
    expect(pending.parentSpanId).toBe(root.spanId);
    expect(spans.find((s) => s.name === "kube.getPod")!.parentSpanId).toBe(pending.spanId);
    const ck = spans.find((s) => s.name === "checkpoint.checkpoint")!;
    expect(ck.parentSpanId).toBe(checkpointing.spanId);
    expect(ck.status).toEqual({ code: 2, message: "kubelet said no" });
    expect(ck.endTimeUnixNano).toBe(`${t0 + 40}000000`);
    for (const s of spans) expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
  });
});
