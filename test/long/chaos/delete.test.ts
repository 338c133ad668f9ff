import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, deleteMigration, migrationGone } from "../../cluster/controller/env.ts";
import { chaosCase, chaosSetup, PHASES, phaseOf, reach, STRATEGIES, type ChaosSetup } from "./scenario.ts";

// The StatefulMigration deleted in each phase of each strategy: cancelled (rolled back, or rolled
// forward once the hand-over happened), zero lost, nothing left behind.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-del");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
});

describe.each(STRATEGIES)("%s", (strategy) => {
  it.each(PHASES)("delete in %s", async (phase) => {
    const row = await chaosCase(env, setup, {
      group: "delete migration",
      strategy,
      fault: `kubectl delete smig in ${phase}`,
      label: `d-${strategy === "Sequential" ? "seq" : "sp"}-${phase.toLowerCase()}`,
      inject: async (run) => {
        await reach(run, phase);
        await deleteMigration(env, run.ns, run.name);
        return phaseOf(run);
      },
      settle: async (run) => {
        await migrationGone(env, run.ns, run.name);
        return "deleted";
      },
    });
    expect(row.error).toBeUndefined();
    expect(row.lost).toBe(0);
    expect(row.twice).toBe(0);
    expect(row.leftovers).toEqual([]);
  });
});
