import { beforeAll, describe, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, deleteMigration, migrationGone } from "../../cluster/controller/env.ts";
import {
  chaosSetup,
  describeOutcome,
  landedCase,
  PHASES,
  settle,
  STRATEGIES,
  type ChaosSetup,
} from "./scenario.ts";

// The StatefulMigration deleted in each phase of each strategy: cancelled (rolled back, or rolled
// forward once the hand-over happened), zero lost, nothing left behind. The deletion must land in
// the phase the case names (by the migration's phaseTimings, as its last write before it was
// removed shows them), else it is tried again.
vi.setConfig({ testTimeout: 900_000 });
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
    await landedCase(env, setup, phase, {
      group: "delete migration",
      strategy,
      fault: `kubectl delete smig in ${phase}`,
      label: `d-${strategy === "Sequential" ? "seq" : "sp"}-${phase.toLowerCase()}`,
      inject: (run) => run.watch.inject(phase, () => deleteMigration(env, run.ns, run.name)),
      settle: async (run, injected) => {
        // Not deleted (it went past the phase first): it ends as any migration does.
        if (typeof injected !== "string" && !injected.applied) return describeOutcome(await settle(run));
        await migrationGone(env, run.ns, run.name);
        return "deleted";
      },
    });
  });
});
