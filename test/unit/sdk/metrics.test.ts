import { describe, expect, it } from "vitest";

describe("registerConsumerMetrics", () => {
  it("exposes the SDK counters to a prom-client registry", async () => {
    const { Registry } = await import("prom-client");
    const { MigratingConsumer } = await import("../../../src/sdk/consumer.ts");
    const { registerConsumerMetrics } = await import("../../../src/sdk/metrics.ts");
    const registry = new Registry();
    const consumer = new MigratingConsumer({ url: "amqp://unused", queue: "q", handler: () => undefined });
    registerConsumerMetrics(consumer, registry);
    const text = await registry.metrics();
    expect(text).toContain("ms2m_sdk_messages_processed 0");
    expect(text).toContain("ms2m_sdk_duplicates_skipped 0");
  });
});
