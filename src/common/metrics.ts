// Shared Prometheus registry helpers (controller and agent) and the controller's metrics.
// Label values are bounded sets (phases, strategies, results): never object names.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

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

export interface ControllerMetrics {
  registry: Registry;
  phaseDuration: Histogram<"phase" | "strategy" | "transfer_mode">;
  migrationDuration: Histogram<"strategy" | "transfer_mode" | "result">;
  migrationsTotal: Counter<"result">;
  inFlight: Gauge;
  reconcileTotal: Counter<"controller" | "result">;
  reconcileTime: Histogram<"controller">;
  reconcileErrors: Counter<"controller">;
  workqueue: WorkqueueMetrics;
}

export interface WorkqueueMetrics {
  depth: Gauge<"name">;
  adds: Counter<"name">;
  queueDuration: Histogram<"name">;
  workDuration: Histogram<"name">;
  retries: Counter<"name">;
}

export function createWorkqueueMetrics(registry: Registry): WorkqueueMetrics {
  return {
    depth: new Gauge({
      name: "workqueue_depth",
      help: "Current depth of the work queue",
      labelNames: ["name"],
      registers: [registry],
    }),
    adds: new Counter({
      name: "workqueue_adds_total",
      help: "Adds handled by the work queue",
      labelNames: ["name"],
      registers: [registry],
    }),
    queueDuration: new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long an item stays in the work queue before being requested",
      labelNames: ["name"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    workDuration: new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long processing an item from the work queue takes",
      labelNames: ["name"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    retries: new Counter({
      name: "workqueue_retries_total",
      help: "Retries handled by the work queue",
      labelNames: ["name"],
      registers: [registry],
    }),
  };
}

export function createControllerMetrics(registry: Registry = createRegistry()): ControllerMetrics {
  return {
    registry,
    phaseDuration: new Histogram({
      name: "ms2m_phase_duration_seconds",
      help: "Duration of each migration phase",
      labelNames: ["phase", "strategy", "transfer_mode"],
      buckets: PHASE_BUCKETS,
      registers: [registry],
    }),
    migrationDuration: new Histogram({
      name: "ms2m_migration_duration_seconds",
      help: "End-to-end duration of migrations",
      labelNames: ["strategy", "transfer_mode", "result"],
      buckets: PHASE_BUCKETS,
      registers: [registry],
    }),
    migrationsTotal: new Counter({
      name: "ms2m_migrations_total",
      help: "Finished migrations by result (succeeded, failed, cancelled)",
      labelNames: ["result"],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "ms2m_migrations_in_flight",
      help: "Migrations not yet Completed or Failed",
      registers: [registry],
    }),
    reconcileTotal: new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers: [registry],
    }),
    reconcileTime: new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers: [registry],
    }),
    workqueue: createWorkqueueMetrics(registry),
  };
}
