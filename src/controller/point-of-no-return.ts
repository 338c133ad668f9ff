// The points past which a rollback would lose state (rollforward.ts explains why): the source
// is gone for good (the strategy says when), or the cutover moved the primary queue to the target.
import type { StatefulMigrationStatus } from "../api/v1alpha1/index.ts";
import type { PhaseContext } from "./context.ts";
import { currentSourcePod } from "./phases/shared.ts";
import { CONDITION_CUTOVER, isConditionTrue } from "./status.ts";
import { strategyFor } from "./strategies/index.ts";

/** The source's state exists only in the checkpoint (Sequential after its deletion was requested). */
export function sourceGone(s: StatefulMigrationStatus | undefined): boolean {
  return s?.strategy !== undefined && strategyFor(s.strategy).sourceGone(s);
}

/** Past the point of no return: a rollback would lose state, so the migration only goes forward. */
export function pastNoReturn(s: StatefulMigrationStatus | undefined): boolean {
  return sourceGone(s) || isConditionTrue(s, CONDITION_CUTOVER);
}

/**
 * The point of no return, read live: the intent alone is not enough, a delete that was refused
 * (or never sent before a crash) leaves the source running and untouched, and then the
 * rollback gives it back as before.
 */
export async function pastNoReturnLive(ctx: PhaseContext): Promise<boolean> {
  const s = ctx.m.status;
  if (isConditionTrue(s, CONDITION_CUTOVER)) return true;
  if (!sourceGone(s)) return false;
  const source = await currentSourcePod(ctx);
  return !source || source.metadata?.deletionTimestamp !== undefined;
}
