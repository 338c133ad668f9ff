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
});
