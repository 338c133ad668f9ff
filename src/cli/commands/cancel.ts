// kubectl ms2m cancel NAME: deleting a running StatefulMigration cancels it. The controller rolls it
// back (the source pod runs on as before) or, past its point of no return, finishes it forward,
// then lets the object go. Waits for that (unless --wait=false) and says which it was.
import { sleep } from "../../common/backoff.ts";
import type { StatefulMigration } from "../../api/v1alpha1/statefulmigration.ts";
import type { Command } from "../command.ts";
import { deleteMigration, getMigration } from "../kube.ts";
import { printObject } from "../output.ts";
import { isTerminal, parseDuration } from "../wait.ts";

/** What the last state seen before the object went says about the outcome. */
export function cancelOutcome(last: StatefulMigration | undefined): string {
  const s = last?.status;
  const rolledBack = s?.conditions?.find((c) => c.type === "RolledBack");
  if (s?.phase === "Completed")
    return "it had passed its point of no return and was finished forward: Completed";
  if (s?.failure?.reason === "Cancelled" && rolledBack?.status === "True")
    return `cancelled in ${s.failure.phase} and rolled back: the source pod runs on`;
  if (s?.failure && rolledBack?.status === "False")
    return `failed in ${s.failure.phase} (${s.failure.reason}) without a rollback: ${s.failure.message}`;
  if (s?.failure) return `cancelled in ${s.failure.phase} (${s.failure.reason})`;
  return `cancelled in ${s?.phase ?? "Pending"}`;
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
    1: "NAME not found, it failed for another reason while being cancelled, or --timeout passed",
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
    if (ctx.format !== "human") printObject(io, ctx.format, last);
    else io.out(`statefulmigration ${ns}/${name}: ${cancelOutcome(last)}\n`);
    // A failure of its own while it was being cancelled (not the cancellation) is worth an exit 1.
    return last?.status?.failure && last.status.failure.reason !== "Cancelled" ? 1 : 0;
  },
};
