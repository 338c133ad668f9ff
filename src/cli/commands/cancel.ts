// kubectl ms2m cancel NAME: deleting a running StatefulMigration cancels it. The controller rolls it
// back (the source pod runs on as before) or, past its point of no return, finishes it forward,
// then lets the object go. Waits for that (unless --no-wait) and says which it was.
import { sleep } from "../../common/backoff.ts";
import type { StatefulMigration } from "../../api/v1alpha1/statefulmigration.ts";
import type { Command } from "../command.ts";
import { deleteMigration, getMigration, migrationEvents } from "../kube.ts";
import { printObject } from "../output.ts";
import { isTerminal, parseDuration } from "../wait.ts";

/** An Event of the migration (type, reason, message), oldest first. */
export interface MigrationEvent {
  type?: string | undefined;
  reason?: string | undefined;
  message?: string | undefined;
}

export interface CancelOutcome {
  text: string;
  /** Cancelled cleanly (rolled back or finished forward): exit 0. */
  ok: boolean;
}

/**
 * What happened, from the last state seen before the object went and the migration's Events
 * (the object may go between two reads: the controller's final `Failed`/`Completed` Event and
 * its `RollbackIncomplete`/`StateNotRestored` warnings say what the last update said).
 */
export function cancelOutcome(
  last: StatefulMigration | undefined,
  events: MigrationEvent[] = [],
): CancelOutcome {
  const s = last?.status;
  const final = events.filter((e) => e.reason === "Failed" || e.reason === "Completed").at(-1);
  if (s?.phase === "Completed" || final?.reason === "Completed")
    return { text: "it had passed its point of no return and was finished forward: Completed", ok: true };
  const rolledBack = s?.conditions?.find((c) => c.type === "RolledBack");
  // RollingBack: in progress when last seen; the outcome is in the Events.
  const conclusive = rolledBack && rolledBack.reason !== "RollingBack" ? rolledBack : undefined;
  const warning = events.find((e) => e.reason === "RollbackIncomplete" || e.reason === "StateNotRestored");
  const incomplete =
    conclusive?.status === "False"
      ? conclusive.message || conclusive.reason
      : warning
        ? warning.message || warning.reason
        : undefined;
  const rolled =
    !incomplete && (conclusive?.status === "True" || /\(rolled back\)$/.test(final?.message ?? ""));
  const phase = s?.failure?.phase ?? s?.phase ?? "Pending";
  if (s?.failure && s.failure.reason !== "Cancelled") {
    const how = incomplete
      ? `; the rollback is incomplete: ${incomplete}`
      : rolled
        ? ", and was rolled back: the source pod runs on"
        : "";
    return { text: `failed in ${phase} (${s.failure.reason}: ${s.failure.message})${how}`, ok: false };
  }
  if (incomplete)
    return { text: `cancelled in ${phase}, but the rollback is incomplete: ${incomplete}`, ok: false };
  if (rolled) return { text: `cancelled in ${phase} and rolled back: the source pod runs on`, ok: true };
  return { text: `cancelled in ${phase}`, ok: true };
}

export const cancelCommand: Command = {
  name: "cancel",
  summary: "Cancel a running migration (rolled back, or finished past the cutover)",
  usage: "kubectl ms2m cancel NAME [--no-wait] [--timeout DURATION]",
  description: `Deletes the StatefulMigration, which asks the controller to cancel it: before the cutover it
is rolled back (the source pod runs on as before; what the migration made is removed); once the
cutover may have moved the queue (Finalizing, or a Sequential migration whose source is gone) it
is finished forward instead. Waits until the controller has released it and says which it was.
A migration that has already ended is left alone.`,
  flags: `  --no-wait            return once the cancellation is requested
  --timeout DURATION   how long to wait for the controller (default 5m)`,
  examples: `  kubectl ms2m cancel consumer-to-node-b -n shop
  kubectl ms2m cancel consumer-to-node-b --no-wait`,
  exitCodes: {
    0: "cancelled (rolled back or finished forward), or it had already ended",
    1: "NAME not found, the rollback could not finish, it had failed for another reason,\n     or --timeout passed",
  },
  options: { "no-wait": { type: "boolean" }, timeout: { type: "string" } },
  positionals: { min: 1, max: 1 },
  async run(ctx, [name], flags) {
    const timeoutMs = parseDuration((flags.timeout as string | undefined) ?? "5m");
    const kube = ctx.kube();
    const ns = kube.namespace;
    const { io } = ctx;
    const before = await getMigration(kube, ns, name!);
    if (!before) throw new Error(`statefulmigration ${ns}/${name} not found`);
    if (isTerminal(before)) {
      io.out(
        `statefulmigration ${ns}/${name} already ${before.status?.phase}: nothing to cancel ` +
          `(kubectl delete smig ${name} -n ${ns} removes the record)\n`,
      );
      return 0;
    }
    await deleteMigration(kube, ns, name!);
    if (flags["no-wait"]) {
      io.out(
        `statefulmigration ${ns}/${name} cancellation requested (in ${before.status?.phase ?? "Pending"})\n`,
      );
      return 0;
    }
    let last: StatefulMigration | undefined = before;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await getMigration(kube, ns, name!);
      if (!m) break;
      last = m;
      if (Date.now() > deadline) {
        throw new Error(
          `statefulmigration ${ns}/${name} is still being cancelled (${m.status?.phase ?? "Pending"}) after ` +
            `${timeoutMs / 1000} s: is the controller running? (kubectl ms2m doctor)`,
        );
      }
      await sleep(250);
    }
    // The controller records its last word as an Event just before it lets the object go.
    let events: MigrationEvent[] = [];
    for (let i = 0; i < 5; i++) {
      events = await migrationEvents(kube, ns, name!, before.metadata.uid);
      if (events.some((e) => e.reason === "Failed" || e.reason === "Completed")) break;
      await sleep(300);
    }
    const outcome = cancelOutcome(last, events);
    if (ctx.format !== "human") printObject(io, ctx.format, { ...last, outcome: outcome.text });
    else io.out(`statefulmigration ${ns}/${name}: ${outcome.text}\n`);
    // A failure of its own, or a rollback that could not finish, is worth an exit 1.
    return outcome.ok ? 0 : 1;
  },
};
