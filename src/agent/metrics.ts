import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { Ms2mError } from "../common/errors.ts";

/** Every label is from a fixed set: operation, outcome reason, HTTP route and code. */
export type Operation = "receive" | "send_direct" | "send_registry" | "pull" | "checkpoint";

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const sizeBuckets = [1, 4, 16, 64, 256, 1024, 4096, 16384].map((mb) => mb * 1024 * 1024);
  const timeBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 300];
  return {
    registry,
    bytes: new Counter({
      name: "ms2m_agent_transfer_bytes_total",
      help: "Checkpoint bytes moved, by operation.",
      labelNames: ["operation"],
      registers: [registry],
    }),
    transferSize: new Histogram({
      name: "ms2m_agent_transfer_size_bytes",
      help: "Size of successfully transferred checkpoint archives.",
      labelNames: ["operation"],
      buckets: sizeBuckets,
      registers: [registry],
    }),
    transferDuration: new Histogram({
      name: "ms2m_agent_transfer_duration_seconds",
      help: "Duration of successful transfers (bytes on the wire), by operation.",
      labelNames: ["operation"],
      buckets: timeBuckets,
      registers: [registry],
    }),
    loadDuration: new Histogram({
      name: "ms2m_agent_load_duration_seconds",
      help: "Duration of loading a checkpoint image into containers-storage (skopeo).",
      buckets: timeBuckets,
      registers: [registry],
    }),
    loadBytes: new Counter({
      name: "ms2m_agent_load_bytes_total",
      help: "Layer bytes loaded into containers-storage.",
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "ms2m_agent_transfers_in_flight",
      help: "Transfers and loads currently running.",
      registers: [registry],
    }),
    failures: new Counter({
      name: "ms2m_agent_failures_total",
      help: "Failed operations, by operation and Kubernetes Status reason.",
      labelNames: ["operation", "reason"],
      registers: [registry],
    }),
    requests: new Counter({
      name: "ms2m_agent_http_requests_total",
      help: "HTTP requests, by route and status code.",
      labelNames: ["route", "code"],
      registers: [registry],
    }),
  };
}

export type AgentMetrics = ReturnType<typeof createMetrics>;

/** Runs `fn`; a failure is counted under `operation` and its Status reason, then rethrown. */
export async function countFailures<T>(
  metrics: AgentMetrics,
  operation: Operation,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const reason = err instanceof Ms2mError ? err.reason : "InternalError";
    metrics.failures.inc({ operation, reason });
    throw err;
  }
}
