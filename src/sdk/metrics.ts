// Exposes the SDK's counters to Prometheus (prom-client), read at scrape time.
import { Gauge, type Registry } from "prom-client";
import type { MigratingConsumer } from "./consumer.ts";

export function registerConsumerMetrics(consumer: MigratingConsumer, registry: Registry): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  // Counted per pod: reset when the process finds itself restored into another one, hence gauges.
  gauge(
    "ms2m_sdk_messages_processed",
    "Messages applied to the application state.",
    () => consumer.metrics().processed,
  );
  gauge(
    "ms2m_sdk_messages_replayed",
    "Messages applied from a replay queue.",
    () => consumer.metrics().replayed,
  );
  gauge(
    "ms2m_sdk_duplicates_skipped",
    "Messages skipped because the state already contained them.",
    () => consumer.metrics().duplicatesSkipped,
  );
  gauge(
    "ms2m_sdk_deliveries_unacked",
    "Deliveries held and not yet acknowledged.",
    () => consumer.metrics().unacked,
  );
}
