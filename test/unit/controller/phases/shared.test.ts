import { describe, expect, it } from "vitest";
import { BROKER_SECRET_TTL_MS } from "../../../../src/controller/phases/shared.ts";
import { drive, setup } from "../scenario.ts";

// The broker URL behind a brokerSecretRef is read once per migration and reused for a while:
// Replaying asks for it on every poll (several times a second), the API server should not be.
describe("replayRef", () => {
  it("reads the broker Secret once for a whole migration, again only after the TTL", async () => {
    const w = setup("Deployment", {
      messageQueueConfig: {
        queueName: "orders",
        exchangeName: "orders-x",
        brokerSecretRef: { name: "broker", key: "url" },
      },
    });
    w.cluster.secrets.set("default/broker", { url: "amqp://u:p@broker:5672" });
    w.messaging.drained = false; // several Replaying rounds
    const errors = await drive(w, {
      between: (round) => {
        if (round === 25) w.messaging.drained = true;
      },
    });
    expect(errors).toEqual([]);
    const m = w.cluster.migrations.get("default/mig")!;
    expect(m.status?.phase).toBe("Completed");
    // Every phase from Checkpointing on needs the broker, and drive() ran ~30 rounds 10 ms apart.
    expect(w.cluster.faults.count("getSecretKey")).toBe(1);
    // Nothing of the finished migration is kept.
    expect(w.deps.brokerUrls?.size).toBe(0);
    expect(BROKER_SECRET_TTL_MS).toBeGreaterThan(1000);
  });

  it("reads it again once the TTL has passed", async () => {
    const w = setup("Deployment", {
      messageQueueConfig: {
        queueName: "orders",
        exchangeName: "orders-x",
        brokerSecretRef: { name: "broker", key: "url" },
      },
    });
    w.cluster.secrets.set("default/broker", { url: "amqp://u:p@broker:5672" });
    w.messaging.drained = false;
    const errors = await drive(w, {
      between: (round) => {
        if (round === 10) w.clock.advance(BROKER_SECRET_TTL_MS + 1);
        if (round === 20) w.messaging.drained = true;
      },
    });
    expect(errors).toEqual([]);
    expect(w.cluster.faults.count("getSecretKey")).toBe(2);
  });
});
