// The order of a migration's phases, in one place. A handler that has finished its work calls
// `ctx.advance()`; only the roll-forward (rollforward.ts) jumps elsewhere, and only to a phase
// that can safely run again.
import type { Phase } from "../api/v1alpha1/index.ts";

export type ActivePhase = Exclude<Phase, "Completed" | "Failed">;

export const PHASE_ORDER = [
  "Pending",
  "Checkpointing",
  "Transferring",
  "Restoring",
  "Replaying",
  "Finalizing",
] as const satisfies readonly ActivePhase[];

/** The phase after `phase`: the next in the table, Completed after the last. */
export function nextPhase(phase: ActivePhase): Exclude<Phase, "Failed"> {
  const i = PHASE_ORDER.indexOf(phase);
  return PHASE_ORDER[i + 1] ?? "Completed";
}
