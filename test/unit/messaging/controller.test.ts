import { describe, expect, it } from "vitest";
import { toMs2mError } from "../../../src/messaging/broker-errors.ts";
import { buildControl } from "../../../src/messaging/control.ts";
import { decideCutover, isDrained, replayRate } from "../../../src/messaging/drain.ts";
import { migrationQueues, replayTopologySchema } from "../../../src/messaging/topology.ts";
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

describe("control messages and names", () => {
  it("names the migration's queues and the reply queue from its uid", () => {
    expect(migrationQueues("abc")).toEqual({
      replayQueue: "ms2m.replay.abc",
      statusQueue: "ms2m.status.abc",
    });
    expect(buildControl("abc", { type: "STOP_CONSUMING" })).toEqual({
      type: "STOP_CONSUMING",
      migration: "abc",
      replyTo: "ms2m.status.abc",
    });
  });

  it("defaults the topology to a fanout exchange with the empty key", () => {
    expect(
      replayTopologySchema.parse({ brokerUrl: "amqp://x", exchange: "e", primaryQueue: "q" }),
    ).toMatchObject({
      exchangeType: "fanout",
      routingKey: "",
    });
  });
});

describe("broker error mapping", () => {
  const withCode = (code: number) => Object.assign(new Error("boom"), { code });
  it("maps channel errors to non-retriable reasons and outages to retriable ServiceUnavailable", () => {
    expect(toMs2mError(withCode(404))).toMatchObject({ reason: "NotFound", retriable: false });
    expect(toMs2mError(withCode(406))).toMatchObject({ reason: "Invalid", retriable: false });
    expect(toMs2mError(withCode(320))).toMatchObject({ reason: "ServiceUnavailable", retriable: true });
    expect(
      toMs2mError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5672"), { code: "ECONNREFUSED" })),
    ).toMatchObject({
      reason: "ServiceUnavailable",
      retriable: true,
    });
  });
});
