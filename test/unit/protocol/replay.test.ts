import { describe, expect, it } from "vitest";
import {
  controlMessageId,
  controlMessageSchema,
  controlQueueName,
  replayQueueName,
  statusMessageSchema,
} from "../../../src/protocol/replay.ts";

describe("protocol", () => {
  it("names queues from pod and migration identity", () => {
    expect(controlQueueName("web-0")).toBe("ms2m.control.web-0");
    expect(replayQueueName("uid-1")).toBe("ms2m.replay.uid-1");
    expect(controlMessageId("uid-1", "END_REPLAY")).toBe("uid-1:END_REPLAY");
  });

  it("parses control messages and defaults cutoff to false", () => {
    const m = controlMessageSchema.parse({
      type: "END_REPLAY",
      migration: "u",
      replyTo: "s",
      replayQueue: "r",
    });
    expect(m).toEqual({ type: "END_REPLAY", migration: "u", replyTo: "s", replayQueue: "r", cutoff: false });
    expect(
      controlMessageSchema.safeParse({ type: "START_REPLAY", migration: "u", replyTo: "s" }).success,
    ).toBe(false);
    expect(controlMessageSchema.safeParse({ type: "REBOOT", migration: "u", replyTo: "s" }).success).toBe(
      false,
    );
  });

  it("validates status messages", () => {
    const counters = { processed: 1, replayed: 0, duplicatesSkipped: 0, unacked: 0 };
    expect(
      statusMessageSchema.safeParse({ type: "STOPPED", migration: "u", pod: "p", at: 1, counters }).success,
    ).toBe(true);
    expect(statusMessageSchema.safeParse({ type: "STOPPED", migration: "u", pod: "p", at: 1 }).success).toBe(
      false,
    );
  });
});
