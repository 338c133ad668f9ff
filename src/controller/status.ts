// Pure helpers over StatefulMigration status: conditions, phase timings, failure. Timestamps
// are ISO strings with milliseconds, so durations stay exact across controller restarts.
import type {
  Condition,
  FailureStatus,
  Phase,
  PhaseTiming,
  StatefulMigration,
  StatefulMigrationStatus,
} from "../api/v1alpha1/index.ts";

export const iso = (ms: number) => new Date(ms).toISOString();

export const CONDITION_PROGRESSING = "Progressing";
export const CONDITION_SUCCEEDED = "Succeeded";
export const CONDITION_ROLLED_BACK = "RolledBack";
export const CONDITION_CUTOVER = "CutoverComplete";
export const CONDITION_HANDED_OVER = "HandedOver";
/** Pending's preflight: the source's runtime can checkpoint and the target's can restore. */
export const CONDITION_RUNTIME_READY = "RuntimeReady";

export function cloneMigration(m: StatefulMigration): StatefulMigration {
  return structuredClone(m);
}

export function getCondition(s: StatefulMigrationStatus | undefined, type: string): Condition | undefined {
  return s?.conditions?.find((c) => c.type === type);
}

export function isConditionTrue(s: StatefulMigrationStatus | undefined, type: string): boolean {
  return getCondition(s, type)?.status === "True";
}

/** Sets a condition; lastTransitionTime changes only when the status does (metav1 semantics). */
export function setCondition(
  m: StatefulMigration,
  nowMs: number,
  c: { type: string; status: Condition["status"]; reason: string; message: string },
): void {
  const status = (m.status ??= {});
  const conditions = (status.conditions ??= []);
  const existing = conditions.find((x) => x.type === c.type);
  const generation = m.metadata.generation;
  if (existing) {
    if (existing.status !== c.status) existing.lastTransitionTime = iso(nowMs);
    existing.status = c.status;
    existing.reason = c.reason;
    existing.message = c.message;
    if (generation !== undefined) existing.observedGeneration = generation;
  } else {
    conditions.push({
      ...c,
      lastTransitionTime: iso(nowMs),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    });
  }
}

export function timingOf(s: StatefulMigrationStatus | undefined, phase: Phase): PhaseTiming | undefined {
  return s?.phaseTimings?.find((t) => t.phase === phase);
}

/** Milliseconds since the current phase started (0 if unknown). */
export function phaseElapsedMs(m: StatefulMigration, nowMs: number): number {
  const phase = m.status?.phase;
  const start = phase ? timingOf(m.status, phase)?.startTime : undefined;
  return start ? Math.max(0, nowMs - Date.parse(start)) : 0;
}

/** Closes the current phase's timing; returns its duration in ms (undefined if it was not open). */
export function endPhaseTiming(m: StatefulMigration, nowMs: number): number | undefined {
  const phase = m.status?.phase;
  const t = phase ? timingOf(m.status, phase) : undefined;
  if (!t || t.endTime) return undefined;
  t.endTime = iso(nowMs);
  t.durationMillis = Math.max(0, nowMs - Date.parse(t.startTime));
  return t.durationMillis;
}

export function startPhaseTiming(m: StatefulMigration, phase: Phase, nowMs: number): void {
  const status = (m.status ??= {});
  const timings = (status.phaseTimings ??= []);
  const existing = timings.find((t) => t.phase === phase);
  if (existing) return;
  timings.push({ phase, startTime: iso(nowMs) });
}

/** "7.412s" from two ISO timestamps. */
export function formatDuration(startIso: string, endMs: number): string {
  return `${((endMs - Date.parse(startIso)) / 1000).toFixed(3)}s`;
}

export function recordFailure(m: StatefulMigration, nowMs: number, failure: FailureStatus): void {
  const status = (m.status ??= {});
  status.failure ??= failure;
  setCondition(m, nowMs, {
    type: CONDITION_ROLLED_BACK,
    status: "False",
    reason: "RollingBack",
    message: `rolling back after ${failure.reason} in ${failure.phase}`,
  });
}
