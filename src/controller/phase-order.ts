// The order of a migration's phases, in one place: the API's phase enum, in its order, without
// the terminal phases. A handler that has finished its work calls `ctx.advance()`; only the
// roll-forward (rollforward.ts) jumps elsewhere, and only to a phase that can safely run again.
import { phases, terminalPhases, type Phase } from "../api/v1alpha1/index.ts";

export type ActivePhase = Exclude<Phase, "Completed" | "Failed">;

export const PHASE_ORDER: readonly ActivePhase[] = phases.filter(
  (p): p is ActivePhase => !terminalPhases.includes(p),
);

/** The phase after `phase`: the next in the table, Completed after the last. */
export function nextPhase(phase: ActivePhase): Exclude<Phase, "Failed"> {
  const i = PHASE_ORDER.indexOf(phase);
  return PHASE_ORDER[i + 1] ?? "Completed";
}
