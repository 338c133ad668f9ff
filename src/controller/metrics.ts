// The StatefulMigration controller's metrics: the engine's (controller_runtime_*, workqueue_*)
// plus ms2m's own phase and migration timings.
import { Counter, Gauge, Histogram } from "prom-client";
import { createRegistry, PHASE_BUCKETS, type Registry } from "../common/metrics.ts";
import { createEngineMetrics, type EngineMetrics } from "../engine/metrics.ts";

export interface ControllerMetrics extends EngineMetrics {
  phaseDuration: Histogram<"phase" | "strategy" | "transfer_mode">;
  phaseControllerDuration: Histogram<"phase">;
  migrationDuration: Histogram<"strategy" | "transfer_mode" | "result">;
  migrationsTotal: Counter<"result">;
  inFlight: Gauge;
}

export function createControllerMetrics(registry: Registry = createRegistry()): ControllerMetrics {
  return {
    ...createEngineMetrics(registry),
    phaseDuration: new Histogram({
      name: "ms2m_phase_duration_seconds",
      help: "Duration of each migration phase",
      labelNames: ["phase", "strategy", "transfer_mode"],
      buckets: PHASE_BUCKETS,
      registers: [registry],
    }),
    phaseControllerDuration: new Histogram({
      name: "ms2m_phase_controller_seconds",
      help: "The controller's own share of each phase (duration minus waits on agents, kubelets, the broker and watch events)",
      labelNames: ["phase"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
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
  };
}
