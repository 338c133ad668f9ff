import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, controllerOf } from "../../cluster/controller/env.ts";
import { chaosSetup, describeOutcome, landedCase, settle, STRATEGIES, type ChaosSetup } from "./scenario.ts";

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
// on a Ready node and owned by its workload, nothing left behind. The NotReady must land in
// Restoring (by the migration's phaseTimings; else the case is tried again with a fresh
// migration), and the outcome is checked in every branch.
vi.setConfig({ testTimeout: 900_000 });
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
  const node = env.cluster.node("node-b");
  const outcomes: { outcome: string; sourceDeletionRequested: boolean }[] = [];
  const rows = await landedCase(env, setup, "Restoring", {
    group: "target node NotReady",
    strategy,
    fault: "node-b Ready=False in Restoring, until the end",
    label: `nr-${strategy === "Sequential" ? "seq" : "sp"}`,
    inject: (run) => run.watch.inject("Restoring", () => node.setReady(false, "ChaosNotReady")),
    settle: async (run) => {
      try {
        const m = await settle(run);
        outcomes.push({
          outcome: describeOutcome(m),
          sourceDeletionRequested: m.status?.sourceDeletionRequestedAt !== undefined,
        });
        return describeOutcome(m);
      } finally {
        await node.setReady(true);
      }
    },
    verify: async (run, serving) => {
      const problems: string[] = [];
      if (!serving) return ["no pod serving"];
      const nodeName = serving.spec?.nodeName ?? "";
      const n = await env.core.readNode({ name: nodeName });
      if (!n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
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
  // The last attempt's NotReady landed in Restoring (landedCase): node-b stayed NotReady from
  // Restoring to the end, so nothing may end up serving there, whichever way it went.
  const row = rows.at(-1);
  const landed = outcomes.at(-1);
  expect(row?.landedIn).toBe("Restoring");
  expect(landed).toBeDefined();
  if (strategy === "ShadowPod") {
    // The source still holds the state: rolled back, the source serves on node-a.
    expect(landed?.sourceDeletionRequested).toBe(false);
    expect(row?.outcome).toMatch(/^failed \([^)]+\), rolled back → serving on node-a$/);
  } else if (landed?.sourceDeletionRequested) {
    // Past the point of no return: rolled forward onto the Ready node (node-a).
    expect(row?.outcome).toMatch(/^completed → serving on node-a$/);
  } else {
    expect(row?.outcome).toMatch(/^failed \([^)]+\), rolled back → serving on node-a$/);
  }
});
