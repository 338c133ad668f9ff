// The agents' own account of a migration's checkpoint and send, read from their logs.
import { SYSTEM_NS, type ControllerTestEnv } from "./env.ts";

/** Seconds the agents reported for this pod's checkpoint and send (from their logs). */
export async function agentSeconds(
  env: ControllerTestEnv,
  pod: string,
): Promise<{ checkpoint: number; send: number }> {
  let checkpoint = 0;
  let send = 0;
  const agents = await env.core.listNamespacedPod({
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=ms2m-agent",
  });
  for (const a of agents.items) {
    const log = await env.cluster
      .node(a.spec?.nodeName ?? "")
      .containerLog(SYSTEM_NS, a.metadata?.name ?? "", "agent");
    for (const line of log.split("\n")) {
      if (!line.includes(`checkpoint-${pod}_`)) continue;
      const rec = JSON.parse(line) as { msg?: string; seconds?: number };
      if (rec.msg === "checkpoint created") checkpoint += rec.seconds ?? 0;
      if (rec.msg === "checkpoint sent") send += rec.seconds ?? 0;
    }
  }
  return { checkpoint, send };
}
