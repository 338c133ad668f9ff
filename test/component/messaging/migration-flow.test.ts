import { describe, expect, it } from "vitest";
import { runMigration } from "./harness.ts";

describe("replay protocol: one whole migration under load", () => {
  it("loses nothing and applies nothing twice at 100 msg/s", async () => {
    const out = await runMigration({
      rates: {
        beforeSetup: 100,
        beforeCheckpoint: 100,
        duringRestore: 100,
        duringReplay: 100,
        duringCutover: 100,
      },
      warmupMs: 300,
      checkpointDelayMs: 200,
      restoreDelayMs: 500,
      cutoffAfterMs: 30_000,
    });
    expect(out.decision.action).toBe("handover");
    expect(out.report).toMatchObject({ cutoffFired: false, drained: true, messagesLeft: 0 });
    expect(out.accounting.lost).toEqual([]);
    expect(out.accounting.appliedTwice).toEqual([]);
    expect(out.accounting.checksumOk).toBe(true);
    expect(out.published).toBeGreaterThan(80);
    // The overlap between checkpoint and replay was seen and skipped, not applied.
    expect(out.targetMetrics.duplicatesSkipped).toBeGreaterThan(0);
    expect(out.targetMetrics.replayed).toBeGreaterThan(0);
  });

  it("cuts over on the target's caught-up report, without polling and without its heartbeat", async () => {
    // The heartbeat is a minute: only the report the SDK sends when it catches up with the
    // replay queue can bring the decision (the controller samples on reports, Replaying).
    const out = await runMigration({
      rates: {
        beforeSetup: 50,
        beforeCheckpoint: 50,
        duringRestore: 200,
        duringReplay: 50,
        duringCutover: 50,
      },
      warmupMs: 300,
      checkpointDelayMs: 100,
      restoreDelayMs: 1500,
      cutoffAfterMs: 30_000,
      // Handover only below 5 messages: the first sample (right after START_REPLAY's answer)
      // sees the ~300 messages published during the restore still queued or in flight.
      onReportsWithHeartbeatMs: 60_000,
    });
    expect(out.decision.action).toBe("handover");
    expect(out.progressReports).toBeGreaterThan(0);
    // A heartbeat would have taken 60 s; the caught-up report comes within the SDK's 100 ms gap.
    expect(out.decisionMs).toBeLessThan(5000);
    expect(out.accounting.lost).toEqual([]);
    expect(out.accounting.appliedTwice).toEqual([]);
  });
});
