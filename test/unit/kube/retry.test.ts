import { describe, expect, it } from "vitest";
import { updateWithConflictRetry } from "../../../src/kube/retry.ts";
import { Ms2mError } from "../../../src/common/errors.ts";

describe("updateWithConflictRetry", () => {
  it("re-reads and re-applies on Conflict", async () => {
    let stored = { v: 1, rv: 1 };
    let conflicts = 1;
    const out = await updateWithConflictRetry(
      async () => ({ ...stored }),
      (cur) => ({ ...cur, v: cur.v + 1 }),
      async (next) => {
        if (conflicts-- > 0) {
          stored = { v: 10, rv: 2 };
          throw new Ms2mError("Conflict", "modified");
        }
        stored = next;
        return next;
      },
    );
    expect(out.v).toBe(11);
  });
});
