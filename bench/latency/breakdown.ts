// Where a migration's time goes: each phase split into the time inside external operations
// (agent checkpoint, checkpoint transfer, kubelet/pod start, broker replay) and the controller's
// own remainder, and the percentiles of those over many migrations. Pure arithmetic, shared by
// bench/latency/run.ts and test/cluster/controller/latency.test.ts.
import { quantile } from "../eval/stats.ts";
import type { Latencies } from "../../sim/config.ts";
import type { PhaseTiming } from "../../src/api/v1alpha1/index.ts";

/** Milliseconds a migration spent inside operations the controller waits on. */
export interface ExternalMs {
  /** The agent's reported checkpoint time (includes the kubelet's checkpointMs). */
  checkpoint: number;
  /** The agents' reported send time. */
  transfer: number;
  /** The target pod's start on the path: the simulator's container start + restore + readiness. */
  podStart: number;
  /** The broker replay: the whole Replaying phase (an upper bound: it holds the controller's replay poll). */
  replay: number;
}

export const EXTERNAL_KINDS = ["checkpoint", "transfer", "podStart", "replay"] as const;

/** The phase each external operation runs in. */
export const EXTERNAL_PHASE: Record<keyof ExternalMs, string> = {
  checkpoint: "Checkpointing",
  transfer: "Transferring",
  podStart: "Restoring",
  replay: "Replaying",
};

/** The simulated nodes' latencies all zero: only real work (processes, API, broker) takes time. */
export const ZERO_LATENCIES: Latencies = {
  imagePullMs: 0,
  containerStartMs: 0,
  readinessMs: 0,
  restoreMs: 0,
  checkpointMs: 0,
};

export const PHASES = ["Pending", "Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing"];

/**
 * The external time of one migration, as latency.test.ts has always derived it: the agents'
 * checkpoint and send seconds (from their logs), the simulator's latencies on the target's path
 * (container start, restore, readiness; the base image is already on the target node) and the
 * Replaying phase.
 */
export function externalMs(
  agent: { checkpoint: number; send: number },
  lat: Latencies,
  phases: Record<string, number>,
): ExternalMs {
  return {
    checkpoint: Math.round(agent.checkpoint * 1000),
    transfer: Math.round(agent.send * 1000),
    podStart: lat.containerStartMs + lat.restoreMs + lat.readinessMs,
    replay: phases.Replaying ?? 0,
  };
}

export interface PhaseSplit {
  /** The phase's duration (status.phaseTimings). */
  total: number;
  /** Time inside external operations within it. */
  external: number;
  /** The controller's own remainder: total − external. */
  controller: number;
}

export interface Breakdown {
  phases: Record<string, PhaseSplit>;
  /** Sum of the phase durations. */
  total: number;
  external: number;
  /** total − external: the controller-added time. */
  added: number;
}

/** One migration's split; the per-phase parts add up to total, external and added. */
export function breakdown(phases: Record<string, number>, ext: ExternalMs): Breakdown {
  const out: Record<string, PhaseSplit> = {};
  const names = [...PHASES, ...Object.keys(phases).filter((p) => !PHASES.includes(p))];
  for (const p of names) {
    const total = phases[p] ?? 0;
    const external = EXTERNAL_KINDS.filter((k) => EXTERNAL_PHASE[k] === p).reduce((a, k) => a + ext[k], 0);
    if (!(p in phases) && external === 0) continue;
    out[p] = { total, external, controller: total - external };
  }
  const total = Object.values(phases).reduce((a, b) => a + b, 0);
  const external = EXTERNAL_KINDS.reduce((a, k) => a + ext[k], 0);
  return { phases: out, total, external, added: total - external };
}

/**
 * One migration's split as the controller's own spans give it (status.phaseTimings[].breakdown,
 * src/controller/timeline): external = waits on agents, kubelets, the broker and watch events.
 * Undefined when a phase lacks a breakdown (a controller without timelines).
 */
export function spanBreakdown(timings: readonly PhaseTiming[]): Breakdown | undefined {
  const phases: Record<string, PhaseSplit> = {};
  let total = 0;
  let external = 0;
  for (const t of timings) {
    if (t.durationMillis === undefined) continue;
    const b = t.breakdown;
    if (!b) return undefined;
    phases[t.phase] = { total: t.durationMillis, external: b.externalMillis, controller: b.controllerMillis };
    total += t.durationMillis;
    external += b.externalMillis;
  }
  return { phases, total, external, added: total - external };
}

export interface Percentiles {
  p50: number;
  p95: number;
}

export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95) };
}

export interface SummaryRow {
  phase: string;
  total: Percentiles;
  external: Percentiles;
  controller: Percentiles;
}

export interface Summary {
  n: number;
  rows: SummaryRow[];
  added: Percentiles;
}

/** Median and p95 per phase (and of the whole) over many migrations. */
export function summarize(runs: Breakdown[]): Summary {
  const names = [...PHASES, ...runs.flatMap((r) => Object.keys(r.phases))].filter(
    (p, i, a) => a.indexOf(p) === i && runs.some((r) => p in r.phases),
  );
  const of = (f: (s: PhaseSplit) => number, p: string) =>
    percentiles(runs.map((r) => f(r.phases[p] ?? { total: 0, external: 0, controller: 0 })));
  const rows: SummaryRow[] = names.map((p) => ({
    phase: p,
    total: of((s) => s.total, p),
    external: of((s) => s.external, p),
    controller: of((s) => s.controller, p),
  }));
  rows.push({
    phase: "migration",
    total: percentiles(runs.map((r) => r.total)),
    external: percentiles(runs.map((r) => r.external)),
    controller: percentiles(runs.map((r) => r.added)),
  });
  return { n: runs.length, rows, added: percentiles(runs.map((r) => r.added)) };
}

const ms = (x: number) => (Number.isFinite(x) ? String(Math.round(x)) : "–");

/** The breakdown as a Markdown table (milliseconds). */
export function table(s: Summary): string {
  const lines = [
    "| phase | duration p50 | p95 | external p50 | p95 | controller p50 | p95 |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const r of s.rows)
    lines.push(
      `| ${r.phase} | ${ms(r.total.p50)} | ${ms(r.total.p95)} | ${ms(r.external.p50)} | ${ms(r.external.p95)} | ` +
        `${ms(r.controller.p50)} | ${ms(r.controller.p95)} |`,
    );
  return lines.join("\n");
}

/** The benchmark's last line. */
export function addedLine(s: Summary): string {
  return `controller-added p50 ${ms(s.added.p50)} ms p95 ${ms(s.added.p95)} ms`;
}
