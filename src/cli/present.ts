// How a StatefulMigration reads to a person: the list (as `kubectl get smig`), the details, the
// per-phase timings table. Pure functions of the object and the time.
import type { PhaseTiming, StatefulMigration } from "../api/v1alpha1/statefulmigration.ts";
import { age, bar, paint, seconds, table, type Io } from "./output.ts";

/** The phases a migration passes through, in order (Completed/Failed end it). */
export const workPhases = [
  "Pending",
  "Checkpointing",
  "Transferring",
  "Restoring",
  "Replaying",
  "Finalizing",
] as const;

export function listTable(items: StatefulMigration[], now: number, withNamespace: boolean): string {
  const header = ["NAME", "PHASE", "STRATEGY", "MODE", "SOURCE", "TARGET", "DURATION", "AGE"];
  const rows = items.map((m) => [
    m.metadata.name ?? "",
    m.status?.phase ?? "",
    m.status?.strategy ?? "",
    m.status?.transferMode ?? "",
    m.spec.sourcePod,
    m.status?.targetNode ?? m.spec.targetNode ?? "",
    m.status?.duration ?? "",
    age(m.metadata.creationTimestamp as string | undefined, now),
  ]);
  if (!withNamespace) return table(header, rows);
  return table(
    ["NAMESPACE", ...header],
    rows.map((r, i) => [items[i]!.metadata.namespace ?? "", ...r]),
  );
}

/** A timing's length: durationMillis, else end - start, else (running) now - start. */
export function timingMillis(t: PhaseTiming, now: number): number {
  if (t.durationMillis !== undefined) return t.durationMillis;
  const start = Date.parse(t.startTime);
  const end = t.endTime ? Date.parse(t.endTime) : now;
  return Math.max(0, end - start);
}

/** Total: status.startTime → completionTime (or now), else the sum of the phases. */
export function totalMillis(m: StatefulMigration, now: number): number {
  const s = m.status;
  if (s?.startTime) {
    const end = s.completionTime ? Date.parse(s.completionTime) : now;
    return Math.max(0, end - Date.parse(s.startTime));
  }
  return (s?.phaseTimings ?? []).reduce((sum, t) => sum + timingMillis(t, now), 0);
}

/** The per-phase timings with bars, and the total. */
export function timingsTable(io: Pick<Io, "color">, m: StatefulMigration, now: number): string {
  const timings = (m.status?.phaseTimings ?? []).filter(
    (t) => t.phase !== "Completed" && t.phase !== "Failed",
  );
  if (timings.length === 0) return "  (no phase timings)\n";
  const millis = timings.map((t) => timingMillis(t, now));
  const max = Math.max(...millis);
  // The controller's own share of each phase, where its timeline recorded one (breakdown).
  const own = timings.some((t) => t.breakdown);
  const ownOf = (t: PhaseTiming) => (t.breakdown ? `${t.breakdown.controllerMillis} ms` : "");
  const rows = timings.map((t, i) => [
    `  ${t.phase}`,
    seconds(millis[i]!).padStart(9),
    ...(own ? [ownOf(t).padStart(10)] : []),
    paint(io, "blue", bar(millis[i]!, max)),
  ]);
  const total = totalMillis(m, now);
  const ownTotal = timings.reduce((sum, t) => sum + (t.breakdown?.controllerMillis ?? 0), 0);
  rows.push([
    "  total",
    seconds(total).padStart(9),
    ...(own ? [`${ownTotal} ms`.padStart(10)] : []),
    m.status?.duration ? `(status.duration ${m.status.duration})` : "",
  ]);
  const header = ["PHASE", "DURATION".padStart(9), ...(own ? ["CONTROLLER".padStart(10)] : []), ""];
  return table(header, rows).replace(/^PHASE/, "  PHASE");
}

/** 512 B, 14.2 KiB, 61.3 MiB */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** One line: where from, where to. */
export function route(m: StatefulMigration): string {
  const s = m.status;
  const from = `${s?.sourceNode ?? "?"}/${m.spec.sourcePod}`;
  const to = `${s?.targetNode ?? m.spec.targetNode ?? "?"}/${s?.targetPod ?? "?"}`;
  return `${from} -> ${to}`;
}

/** The closing summary of `migrate --wait` and the head of `status NAME`. */
export function summary(io: Pick<Io, "color">, m: StatefulMigration, now: number): string {
  const s = m.status;
  const ns = m.metadata.namespace ? `${m.metadata.namespace}/` : "";
  const phase = s?.phase ?? "Pending";
  const colored =
    phase === "Completed"
      ? paint(io, "green", phase)
      : phase === "Failed"
        ? paint(io, "red", phase)
        : paint(io, "bold", phase);
  const how = [s?.strategy ?? m.spec.migrationStrategy, s?.transferMode ?? m.spec.transferMode]
    .filter(Boolean)
    .join(", ");
  let text = `${ns}${m.metadata.name}: ${colored}${how ? ` (${how})` : ""}\n`;
  text += `  ${route(m)}\n`;
  if (s?.failure) {
    text += `  ${paint(io, "red", "failed")} in ${s.failure.phase}: ${s.failure.reason}: ${s.failure.message}\n`;
    const rolledBack = s.conditions?.find((c) => c.type === "RolledBack");
    if (rolledBack)
      text += `  rolled back: ${rolledBack.status === "True" ? "yes" : rolledBack.status === "False" ? "no" : "unknown"} (${rolledBack.reason})\n`;
  }
  if (s?.replay && (s.replay.messagesReplayed !== undefined || s.replay.cutoffReached)) {
    const r = s.replay;
    text += `  replay: ${r.messagesReplayed ?? 0} messages replayed${r.cutoffReached ? `, cutoff reached with ${r.messagesRemaining ?? "?"} left` : ""}\n`;
  }
  text += `\n${timingsTable(io, m, now)}`;
  return text;
}

/** `status NAME`: the summary, then conditions and containers. */
export function details(io: Pick<Io, "color">, m: StatefulMigration, now: number): string {
  let text = summary(io, m, now);
  const conditions = m.status?.conditions ?? [];
  if (conditions.length > 0) {
    text += `\n${table(
      ["  CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"],
      conditions.map((c) => [`  ${c.type}`, c.status, c.reason, age(c.lastTransitionTime, now), c.message]),
    )}`;
  }
  const containers = m.status?.containers ?? [];
  if (containers.length > 0) {
    text += `\n${table(
      ["  CONTAINER", "CHECKPOINT", "SIZE", "VIA", "IMAGE"],
      containers.map((c) => [
        `  ${c.name}`,
        c.checkpointDigest ? c.checkpointDigest.slice(0, 19) : c.checkpointRequestedAt ? "requested" : "",
        c.checkpointBytes !== undefined ? bytes(c.checkpointBytes) : "",
        c.checkpointVia ?? "",
        c.checkpointImage ?? "",
      ]),
    )}`;
  }
  return text;
}
