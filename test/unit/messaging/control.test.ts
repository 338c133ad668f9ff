import { describe, expect, it } from "vitest";
import { buildControl } from "../../../src/messaging/control.ts";
import { migrationQueues } from "../../../src/messaging/topology.ts";

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
});
