// The engine's metrics, named as controller-runtime names them (a dashboard for one works for
// the other): reconciles per controller and the work queue.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS } from "../common/metrics.ts";

export interface WorkqueueMetrics {
  depth: Gauge<"name">;
  adds: Counter<"name">;
  queueDuration: Histogram<"name">;
  workDuration: Histogram<"name">;
  retries: Counter<"name">;
}

export interface EngineMetrics {
  registry: Registry;
  reconcileTotal: Counter<"controller" | "result">;
  reconcileTime: Histogram<"controller">;
  reconcileErrors: Counter<"controller">;
  workqueue: WorkqueueMetrics;
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

export function createEngineMetrics(registry: Registry): EngineMetrics {
  return {
    registry,
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
