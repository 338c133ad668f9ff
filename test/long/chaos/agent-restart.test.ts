import { beforeAll, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { controllerTestEnv, SYSTEM_NS, waitForAgents } from "../../cluster/controller/env.ts";
import { chaosSetup, landedCase, type ChaosSetup } from "./scenario.ts";

// The target node's agent restarted around a Direct transfer (ShadowPod): its process killed
// (the node restarts the container) as the checkpoint is taken, so the transfer meets a
// restarting agent; or its pod deleted (the DaemonSet makes a new one) once Transferring began.
// The fault must land in the phase the case names (by the migration's phaseTimings), else it is
// tried again with a fresh migration.
vi.setConfig({ testTimeout: 900_000 });
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
  await landedCase(env, setup, phase, {
    group: "target agent restart",
    strategy: "ShadowPod",
    fault:
      how === "kill"
        ? `agent process on node-b SIGKILLed in ${phase}`
        : `agent pod on node-b deleted in ${phase}`,
    label: `ag-${how}-${phase.toLowerCase()}`,
    inject: async (run) => {
      // Found before the phase comes, so that the fault itself is one call.
      const agent = await targetAgent();
      const name = agent.metadata?.name ?? "";
      const status = await env.cluster.node("node-b").status();
      const pid = status.pods
        .find((p) => p.namespace === SYSTEM_NS && p.name === name)
        ?.containers.find((c) => c.pid)?.pid;
      if (how === "kill" && !pid) throw new Error("agent container has no pid");
      let hit = false;
      try {
        return await run.watch.inject(phase, async () => {
          hit = true;
          if (how === "delete")
            await env.core.deleteNamespacedPod({ namespace: SYSTEM_NS, name, gracePeriodSeconds: 0 });
          else process.kill(pid ?? 0, "SIGKILL");
        });
      } finally {
        if (hit) await waitForAgents(env, 120_000);
      }
    },
  });
});
