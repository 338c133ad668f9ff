import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, controllerOf } from "../../cluster/controller/env.ts";
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
// migration ends. What the design promises (docs/controller.md, "Point of no return"):
// - ShadowPod (Direct): the source still holds the state, so the migration rolls back and the
//   source on node-a keeps serving;
// - Sequential (Registry): before the source's deletion was requested it rolls back like
//   ShadowPod; once it was requested the source's state is only in the checkpoint, so the
//   migration rolls forward and restores the checkpoint on a Ready node (the source node,
//   node-a), where the StatefulSet adopts it.
// Either way: zero lost (the accounting reads the serving pod's state, so a pod without the
// migrated state would show every earlier message as lost), zero applied twice, the serving pod
// on a Ready node and owned by its workload, nothing left behind.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-node");
});
afterFile(async (failed) => {
  await env.cluster
    .node("node-b")
    .setReady(true)
    .catch(() => undefined);
  await setup?.teardown(failed);
});

it.each(STRATEGIES)("%s: target NotReady in Restoring", async (strategy) => {
  let outcome = "";
  let sourceDeletionRequested = false;
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
        const m = await settle(run);
        sourceDeletionRequested = m.status?.sourceDeletionRequestedAt !== undefined;
        outcome = describeOutcome(m);
        return landed;
      } finally {
        await node.setReady(true);
      }
    },
    settle: async () => outcome,
    verify: async (run, serving) => {
      const problems: string[] = [];
      if (!serving) return ["no pod serving"];
      const nodeName = serving.spec?.nodeName ?? "";
      const node = await env.core.readNode({ name: nodeName });
      if (!node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
        problems.push(`serving on ${nodeName}, which is not Ready`);
      const owner = controllerOf(serving);
      const want = run.kind === "sts" ? "StatefulSet" : "ReplicaSet";
      if (owner?.kind !== want || (run.kind === "sts" && owner.name !== run.w.name))
        problems.push(
          `serving pod owned by ${owner ? `${owner.kind} ${owner.name}` : "nobody"}, not its ${want}`,
        );
      return problems;
    },
  });
  expect(row.error).toBeUndefined();
  expect(row.lost).toBe(0);
  expect(row.twice).toBe(0);
  expect(row.leftovers).toEqual([]);
  if (row.landedIn === "Restoring") {
    // node-b stayed NotReady through Restoring: nothing may end up serving there.
    if (strategy === "Sequential" && sourceDeletionRequested)
      expect(row.outcome).toMatch(/^completed → serving on node-a$/);
    else expect(row.outcome).toMatch(/rolled back → serving on node-a$/);
  }
});
