import { describe, expect, it } from "vitest";
import { cancelOutcome, type MigrationEvent } from "../../../../src/cli/commands/cancel.ts";
import type { StatefulMigration } from "../../../../src/api/v1alpha1/statefulmigration.ts";

const last = (status: object) => ({ status }) as unknown as StatefulMigration;
const rolledBack = (status: "True" | "False", reason: string, message = "") => [
  { type: "RolledBack", status, reason, message },
];
const cancelled = (phase: string) => ({
  phase,
  reason: "Cancelled",
  message: "the StatefulMigration was deleted",
});
const failedEvent = (message: string): MigrationEvent => ({ type: "Warning", reason: "Failed", message });

describe("cancelOutcome: what the last state seen and the Events say", () => {
  it.each<[string, StatefulMigration | undefined, MigrationEvent[], string, boolean]>([
    [
      "finished forward",
      last({ phase: "Completed" }),
      [],
      "it had passed its point of no return and was finished forward: Completed",
      true,
    ],
    [
      "finished forward, seen only in the Events",
      last({ phase: "Finalizing" }),
      [{ type: "Normal", reason: "Completed", message: "migrated to node-b as p-ms2m-1" }],
      "it had passed its point of no return and was finished forward: Completed",
      true,
    ],
    [
      "rolled back, the last update seen",
      last({
        phase: "Failed",
        failure: cancelled("Checkpointing"),
        conditions: rolledBack("True", "RolledBack"),
      }),
      [],
      "cancelled in Checkpointing and rolled back: the source pod runs on",
      true,
    ],
    [
      "rolled back, the last update missed (RollingBack seen): the final Event says",
      last({
        phase: "Restoring",
        failure: cancelled("Restoring"),
        conditions: rolledBack("False", "RollingBack"),
      }),
      [
        { type: "Normal", reason: "Restoring", message: "Transferring -> Restoring" },
        failedEvent("Cancelled in Restoring: the StatefulMigration was deleted (rolled back)"),
      ],
      "cancelled in Restoring and rolled back: the source pod runs on",
      true,
    ],
    [
      "the rollback could not finish",
      last({
        phase: "Failed",
        failure: cancelled("Replaying"),
        conditions: rolledBack("False", "RollbackIncomplete", "rollback incomplete: broker unreachable"),
      }),
      [],
      "cancelled in Replaying, but the rollback is incomplete: rollback incomplete: broker unreachable",
      false,
    ],
    [
      "the rollback could not finish, seen only in the Events",
      last({
        phase: "Replaying",
        failure: cancelled("Replaying"),
        conditions: rolledBack("False", "RollingBack"),
      }),
      [{ type: "Warning", reason: "RollbackIncomplete", message: "broker unreachable" }],
      "cancelled in Replaying, but the rollback is incomplete: broker unreachable",
      false,
    ],
    [
      "it had failed on its own",
      last({
        phase: "Failed",
        failure: { phase: "Restoring", reason: "RestoreFailed", message: "no image" },
        conditions: rolledBack("True", "RolledBack"),
      }),
      [],
      "failed in Restoring (RestoreFailed: no image), and was rolled back: the source pod runs on",
      false,
    ],
    ["nothing known but the phase", last({ phase: "Transferring" }), [], "cancelled in Transferring", true],
    ["nothing known", undefined, [], "cancelled in Pending", true],
  ])("%s", (_, m, events, text, ok) => expect(cancelOutcome(m, events)).toEqual({ text, ok }));
});
