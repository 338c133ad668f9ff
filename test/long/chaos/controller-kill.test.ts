import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep } from "../../../tooling/exec.ts";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import { chaosCase, chaosSetup, PHASES, phaseOf, reach, STRATEGIES, type ChaosSetup } from "./scenario.ts";

// The controller binary SIGKILLed in each phase of each strategy and started again: the
// migration completes or rolls back cleanly, zero lost, nothing left behind.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-kill");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
});

describe.each(STRATEGIES)("%s", (strategy) => {
  it.each(PHASES)("controller SIGKILL in %s", async (phase) => {
    const row = await chaosCase(env, setup, {
      group: "controller SIGKILL",
      strategy,
      fault: `controller SIGKILL in ${phase}, restart`,
      label: `k-${strategy === "Sequential" ? "seq" : "sp"}-${phase.toLowerCase()}`,
      inject: async (run) => {
        await reach(run, phase);
        try {
          await setup.controller.kill();
          return await phaseOf(run);
        } finally {
          await sleep(300);
          await setup.controller.start();
        }
      },
    });
    expect(row.error).toBeUndefined();
    expect(row.lost).toBe(0);
    expect(row.twice).toBe(0);
    expect(row.leftovers).toEqual([]);
  });
});
