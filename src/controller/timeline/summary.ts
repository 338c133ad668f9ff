// The one-line account of where a migration's time went, for the Event at its end and for
// `kubectl ms2m status`: per phase its duration and the controller's own share.
import type { PhaseTiming, StatefulMigrationStatus } from "../../api/v1alpha1/index.ts";

const fmt = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`);

/** Totals over the phases that have a breakdown. */
export function timelineTotals(timings: readonly PhaseTiming[]): {
  durationMillis: number;
  controllerMillis: number;
  externalMillis: number;
  apiCalls: number;
  apiMillis: number;
  partial: boolean;
} {
  const t = {
    durationMillis: 0,
    controllerMillis: 0,
    externalMillis: 0,
    apiCalls: 0,
    apiMillis: 0,
    partial: false,
  };
  for (const p of timings) {
    const b = p.breakdown;
    if (!b) continue;
    t.durationMillis += p.durationMillis ?? 0;
    t.controllerMillis += b.controllerMillis;
    t.externalMillis += b.externalMillis;
    t.apiCalls += b.apiCalls;
    t.apiMillis += b.apiMillis ?? 0;
    t.partial ||= b.partial === true;
  }
  return t;
}

/**
 * "total 2.41s, controller 46ms (31 API calls, 28ms); Pending 14ms (own 9ms), Checkpointing
 * 310ms (own 6ms) ...". Undefined when no phase has a breakdown.
 */
export function timelineSummary(status: StatefulMigrationStatus | undefined): string | undefined {
  const timings = (status?.phaseTimings ?? []).filter((p) => p.breakdown);
  if (timings.length === 0) return undefined;
  const t = timelineTotals(timings);
  const phases = timings
    .map((p) => `${p.phase} ${fmt(p.durationMillis ?? 0)} (own ${fmt(p.breakdown!.controllerMillis)})`)
    .join(", ");
  return (
    `total ${fmt(t.durationMillis)}, controller ${fmt(t.controllerMillis)} ` +
    `(${t.apiCalls} API calls, ${fmt(t.apiMillis)})${t.partial ? ", partial: the controller restarted" : ""}; ${phases}`
  );
}
