import { describe, expect, it } from "vitest";
import { decideCutover, isDrained, replayRate } from "../../../src/messaging/drain.ts";
import type { StatusMessage } from "../../../src/protocol/replay.ts";

const progress = (at: number, replayed: number, duplicatesSkipped = 0): StatusMessage => ({
  type: "PROGRESS",
  migration: "u",
  pod: "t",
  at,
  counters: { processed: replayed, replayed, duplicatesSkipped, unacked: 0 },
});

describe("drain detection", () => {
  it("counts as drained only with depth 0, nothing unacknowledged and the consumer's confirmation", () => {
    expect(isDrained({ depth: 0, unacked: 0, confirmed: true })).toBe(true);
    expect(isDrained({ depth: 0, unacked: 0, confirmed: false })).toBe(false);
    expect(isDrained({ depth: 0, unacked: 3, confirmed: true })).toBe(false);
    expect(isDrained({ depth: 0, unacked: undefined, confirmed: true })).toBe(false);
    expect(isDrained({ depth: 1, unacked: 0, confirmed: true })).toBe(false);
  });

  it("measures the replay rate from the consumer's counters, skipped duplicates included", () => {
    expect(replayRate([progress(0, 0)])).toBe(0);
    expect(replayRate([progress(0, 0), progress(1000, 150, 50)])).toBe(200);
    // Only the last window counts.
    expect(replayRate([progress(0, 0), progress(10_000, 10), progress(12_000, 410)], 5000)).toBe(200);
  });

  it("decides wait / handover / cutoff", () => {
    const policy = { replayStartedAt: 0, cutoffAfterMs: 120_000 };
    expect(decideCutover({ depth: 500, replayRate: 100 }, policy, 1000).action).toBe("wait");
    expect(decideCutover({ depth: 15, replayRate: 0 }, policy, 1000).action).toBe("handover");
    // At 1000 msg/s a backlog of 900 takes under a second: hand over.
    expect(decideCutover({ depth: 900, replayRate: 1000 }, policy, 1000).action).toBe("handover");
    expect(decideCutover({ depth: 500, replayRate: 100 }, policy, 120_000)).toMatchObject({
      action: "cutoff",
      messagesLeft: 500,
    });
  });
});
