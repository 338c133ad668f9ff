import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { account } from "../../../workload/accounting.ts";
import { AppState } from "../../../workload/state.ts";

describe("workload state and accounting", () => {
  it("reports lost and twice-applied sequence numbers exactly (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 400 }),
        (published, appliedSeqs) => {
          const state = new AppState();
          for (const s of appliedSeqs) state.apply(s);
          const pub = Array.from({ length: published }, (_, i) => i + 1);
          const report = account(pub, AppState.from(state.toJSON()).toJSON());
          const applied = new Set(appliedSeqs);
          expect(report.lost).toEqual(pub.filter((s) => !applied.has(s)));
          expect(report.appliedTwice.length).toBe(appliedSeqs.length - applied.size);
          expect(report.checksumOk).toBe(true);
          expect(report.ok).toBe(report.lost.length === 0 && report.appliedTwice.length === 0);
        },
      ),
    );
  });

  it("detects a state whose checksum does not match what it claims", () => {
    const state = new AppState();
    state.apply(1);
    expect(account([1], { ...state.toJSON(), checksum: 7 }).checksumOk).toBe(false);
  });
});
