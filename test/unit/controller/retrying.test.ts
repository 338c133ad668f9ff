// A phase retried on the same error: a Warning `Retrying` once it has persisted, and the phase's
// timeout says what it was retrying on (a registry that refuses connections used to end in
// "Transferring did not finish in time" and nothing else).
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { drive, setup } from "./scenario.ts";

const refused = () =>
  new Ms2mError("ServiceUnavailable", "push to 198.51.100.1:5000: connect ECONNREFUSED 198.51.100.1:5000");

describe("a phase retried until its deadline", () => {
  it("says once that it is retrying, and its timeout names the error", async () => {
    const w = setup("Deployment");
    w.transfer.faults.inject("transfer", ...Array.from({ length: 200 }, refused));
    await drive(w, { between: () => w.clock.advance(20_000), maxRounds: 200 });
    const s = w.cluster.migration("mig").status!;
    expect(s.phase).toBe("Failed");
    expect(s.failure?.reason).toBe("TransferringTimeout");
    expect(s.failure?.message).toBe(
      "Transferring did not finish in time; it was retrying on: push to 198.51.100.1:5000: connect ECONNREFUSED 198.51.100.1:5000",
    );
    const retrying = w.events.events.filter((e) => e.reason === "Retrying");
    expect(retrying).toHaveLength(1);
    expect(retrying[0]).toMatchObject({ type: "Warning" });
    expect(retrying[0]!.message).toMatch(
      /^Transferring: push to 198\.51\.100\.1:5000: connect ECONNREFUSED .* \(failing for \d+ s; retried until the phase's deadline\)$/,
    );
    // Rolled back as any failure.
    expect(s.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
  });

  it("a one-off error that clears is not reported", async () => {
    const w = setup("Deployment");
    w.transfer.faults.inject("transfer", refused());
    await drive(w);
    expect(w.cluster.migration("mig").status?.phase).toBe("Completed");
    expect(w.events.events.filter((e) => e.reason === "Retrying")).toEqual([]);
  });
});
