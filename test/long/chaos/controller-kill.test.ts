import { beforeAll, describe, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep } from "../../../tooling/exec.ts";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import { chaosSetup, landedCase, PHASES, STRATEGIES, type ChaosSetup } from "./scenario.ts";

// The controller binary SIGKILLed in each phase of each strategy and started again: the
// migration completes or rolls back cleanly, zero lost, nothing left behind. The kill must land
// in the phase the case names (by the migration's phaseTimings), else it is tried again.
vi.setConfig({ testTimeout: 900_000 });
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
    await landedCase(env, setup, phase, {
      group: "controller SIGKILL",
      strategy,
      fault: `controller SIGKILL in ${phase}, restart`,
      label: `k-${strategy === "Sequential" ? "seq" : "sp"}-${phase.toLowerCase()}`,
      inject: async (run) => {
        let killed = false;
        try {
          return await run.watch.inject(phase, async () => {
            killed = true;
            await setup.controller.kill();
          });
        } finally {
          if (killed) {
            await sleep(300);
            await setup.controller.start();
          }
        }
      },
    });
  });
});
