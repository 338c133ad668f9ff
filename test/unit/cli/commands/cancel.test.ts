import { describe, expect, it } from "vitest";
import { cancelOutcome } from "../../../../src/cli/commands/cancel.ts";
import type { StatefulMigration } from "../../../../src/api/v1alpha1/statefulmigration.ts";

const last = (status: object) => ({ status }) as unknown as StatefulMigration;
const rolledBack = (s: "True" | "False") => [{ type: "RolledBack", status: s, reason: "r", message: "" }];

describe("cancelOutcome: what the last state seen says", () => {
  it.each([
    [
      last({ phase: "Completed" }),
      "it had passed its point of no return and was finished forward: Completed",
    ],
    [
      last({
        phase: "Failed",
        failure: { phase: "Checkpointing", reason: "Cancelled", message: "deleted" },
        conditions: rolledBack("True"),
      }),
      "cancelled in Checkpointing and rolled back: the source pod runs on",
    ],
    [
      last({
        phase: "Failed",
        failure: { phase: "Restoring", reason: "RestoreFailed", message: "no image" },
        conditions: rolledBack("False"),
      }),
      "failed in Restoring (RestoreFailed) without a rollback: no image",
    ],
    [
      last({ phase: "Failed", failure: { phase: "Replaying", reason: "Cancelled", message: "" } }),
      "cancelled in Replaying (Cancelled)",
    ],
    [last({ phase: "Transferring" }), "cancelled in Transferring"],
    [undefined, "cancelled in Pending"],
  ])("%#", (m, text) => expect(cancelOutcome(m)).toBe(text));
});
