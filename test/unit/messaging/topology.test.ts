import { describe, expect, it } from "vitest";
import { replayTopologySchema } from "../../../src/messaging/topology.ts";

describe("control messages and names", () => {
  it("defaults the topology to a fanout exchange with the empty key", () => {
    expect(
      replayTopologySchema.parse({ brokerUrl: "amqp://x", exchange: "e", primaryQueue: "q" }),
    ).toMatchObject({
      exchangeType: "fanout",
      routingKey: "",
    });
  });
});
