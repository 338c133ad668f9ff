import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import {
  chaosCase,
  chaosSetup,
  describeOutcome,
  phaseOf,
  reach,
  settle,
  STRATEGIES,
  type ChaosSetup,
} from "./scenario.ts";

// The target node reports NotReady as the migration enters Restoring, and stays so until the
// migration ends: the defined outcome is a rollback with the source (on node-a) still serving.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-node");
});
afterAll(async () => {
  await env.cluster
    .node("node-b")
    .setReady(true)
    .catch(() => undefined);
  await setup?.teardown();
});

it.each(STRATEGIES)("%s: target NotReady in Restoring", async (strategy) => {
  let outcome = "";
  const row = await chaosCase(env, setup, {
    group: "target node NotReady",
    strategy,
    fault: "node-b Ready=False in Restoring, until the end",
    label: `nr-${strategy === "Sequential" ? "seq" : "sp"}`,
    inject: async (run) => {
      await reach(run, "Restoring");
      const node = env.cluster.node("node-b");
      try {
        await node.setReady(false, "ChaosNotReady");
        const landed = await phaseOf(run);
        outcome = describeOutcome(await settle(run));
        return landed;
      } finally {
        await node.setReady(true);
      }
    },
    settle: async () => outcome,
  });
  expect(row.error).toBeUndefined();
  expect(row.lost).toBe(0);
  expect(row.twice).toBe(0);
  expect(row.leftovers).toEqual([]);
  if (row.landedIn === "Restoring") expect(row.outcome).toMatch(/rolled back → serving on node-a/);
});
