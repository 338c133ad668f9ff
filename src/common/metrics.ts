// Shared Prometheus registry helpers (controller and agent). Label values are bounded sets
// (phases, strategies, results): never object names.
import { Registry, collectDefaultMetrics } from "prom-client";

export { Registry };

export function createRegistry(opts: { defaultMetrics?: boolean; prefix?: string } = {}): Registry {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: opts.prefix });
  return registry;
}

/** 0.05 s .. 300 s: checkpoints take tenths of a second, long replays minutes. */
export const PHASE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** controller-runtime's reconcile/workqueue latency buckets. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
