// Property: for random publish schedules (0..200 msg/s per phase), checkpoint instants, restore
// delays, replay budgets and messages published during the cutover itself, the accounting shows
// zero loss and zero double application whenever the cutoff did not fire, and when it fired the
// report names exactly how many messages were left and every lost message is among them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runMigration, type MigrationScenario } from "./harness.ts";

const rate = fc.integer({ min: 0, max: 200 });

const scenario: fc.Arbitrary<MigrationScenario> = fc.record({
  rates: fc.record({
    beforeSetup: fc.integer({ min: 1, max: 200 }),
    beforeCheckpoint: rate,
    duringRestore: rate,
    duringReplay: rate,
    duringCutover: rate,
  }),
  warmupMs: fc.integer({ min: 50, max: 600 }),
  checkpointDelayMs: fc.integer({ min: 0, max: 600 }),
  restoreDelayMs: fc.integer({ min: 50, max: 1200 }),
  // 0 and 150 ms budgets fire the cutoff whenever a backlog is left; 5 s fires only for a target slower than the producer.
  cutoffAfterMs: fc.constantFrom(0, 150, 5000),
  // A slow target (2-4 ms per message) replays below the publish rate, so cutoffs do happen.
  targetWorkMs: fc.constantFrom(0, 0, 2, 4),
});

const worstCase: MigrationScenario = {
  rates: {
    beforeSetup: 200,
    beforeCheckpoint: 200,
    duringRestore: 200,
    duringReplay: 200,
    duringCutover: 200,
  },
  warmupMs: 200,
  checkpointDelayMs: 100,
  restoreDelayMs: 1200,
  cutoffAfterMs: 0,
  targetWorkMs: 4,
};

describe("replay protocol property", () => {
  it(
    "zero loss / zero double application without cutoff; exact leftover report with it",
    { timeout: 150_000 },
    async () => {
      const seen = { cutoff: 0, handover: 0 };
      await fc.assert(
        fc.asyncProperty(scenario, async (s) => {
          const out = await runMigration(s);
          expect(out.accounting.appliedTwice).toEqual([]);
          expect(out.accounting.checksumOk).toBe(true);
          if (!out.report.cutoffFired) {
            seen.handover++;
            expect(out.report.drained).toBe(true);
            expect(out.report.messagesLeft).toBe(0);
            expect(out.accounting.lost).toEqual([]);
          } else {
            seen.cutoff++;
            // The report counts exactly what the replay queue still held...
            expect(out.leftInReplay.length).toBe(out.report.messagesLeft);
            // ...every lost message is one of those, and loss is bounded by what the report says.
            const left = new Set(out.leftInReplay);
            for (const seq of out.accounting.lost) expect(left.has(seq)).toBe(true);
            expect(out.accounting.lost.length).toBeLessThanOrEqual(
              out.report.messagesLeft - out.report.stillInPrimaryAtLeast,
            );
          }
        }),
        {
          numRuns: Number(process.env.MS2M_PROPERTY_RUNS ?? 14),
          endOnFailure: true,
          // Always covered: a slow target at 200 msg/s with no replay budget, so the cutoff fires.
          examples: [[{ ...worstCase }]],
        },
      );
      console.log(`property runs: ${seen.handover} without cutoff, ${seen.cutoff} with cutoff`);
      expect(seen.handover).toBeGreaterThan(0);
      expect(seen.cutoff).toBeGreaterThan(0);
    },
  );
});
