import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, SYSTEM_NS, waitForAgents } from "../../cluster/controller/env.ts";
import { chaosCase, chaosSetup, phaseOf, reach, type ChaosSetup } from "./scenario.ts";

// The target node's agent restarted around a Direct transfer (ShadowPod): its process killed
// (the node restarts the container) as the checkpoint is taken, so the transfer meets a
// restarting agent; or its pod deleted (the DaemonSet makes a new one) once Transferring began.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-agent");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
});

async function targetAgent() {
  const pods = await env.core.listNamespacedPod({
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=ms2m-agent",
    fieldSelector: "spec.nodeName=node-b",
  });
  const pod = pods.items.find((p) => !p.metadata?.deletionTimestamp);
  if (!pod) throw new Error("no agent on node-b");
  return pod;
}

it.each([
  ["Checkpointing", "kill"],
  ["Transferring", "kill"],
  ["Transferring", "delete"],
] as const)("target agent %s: %s", async (phase, how) => {
  const row = await chaosCase(env, setup, {
    group: "target agent restart",
    strategy: "ShadowPod",
    fault:
      how === "kill"
        ? `agent process on node-b SIGKILLed in ${phase}`
        : `agent pod on node-b deleted in ${phase}`,
    label: `ag-${how}-${phase.toLowerCase()}`,
    inject: async (run) => {
      await reach(run, phase);
      try {
        const agent = await targetAgent();
        if (how === "delete") {
          await env.core.deleteNamespacedPod({
            namespace: SYSTEM_NS,
            name: agent.metadata?.name ?? "",
            gracePeriodSeconds: 0,
          });
        } else {
          const status = await env.cluster.node("node-b").status();
          const pid = status.pods
            .find((p) => p.namespace === SYSTEM_NS && p.name === agent.metadata?.name)
            ?.containers.find((c) => c.pid)?.pid;
          if (!pid) throw new Error("agent container has no pid");
          process.kill(pid, "SIGKILL");
        }
        return await phaseOf(run);
      } finally {
        await waitForAgents(env, 120_000);
      }
    },
  });
  expect(row.error).toBeUndefined();
  expect(row.lost).toBe(0);
  expect(row.twice).toBe(0);
  expect(row.leftovers).toEqual([]);
});
