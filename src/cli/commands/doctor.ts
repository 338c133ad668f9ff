// kubectl ms2m doctor: is this cluster ready for live migrations, and if not, why (checks.ts).
// Exit 0 when nothing failed (warnings allowed), 1 otherwise.
import { UsageError, type Command } from "../command.ts";
import { printObject } from "../output.ts";
import type { AgentAccessMode } from "../doctor/agents.ts";
import { runDoctor } from "../doctor/checks.ts";
import { renderReport } from "../doctor/report.ts";
import { parseDuration } from "../wait.ts";

const accessModes: AgentAccessMode[] = ["auto", "pod-ip", "port-forward"];

export const doctorCommand: Command = {
  name: "doctor",
  summary: "Check that the cluster can migrate: CRD, controller, agents, runtimes, kubelets, RBAC, broker",
  usage: `kubectl ms2m doctor [--broker-secret NAME[:KEY]] [-n APP_NAMESPACE] [flags]

  --broker-secret NAME[:KEY]   also check this broker Secret (in -n, key default url): it exists,
                               the controller may read it, the broker accepts a connection
  --system-namespace NS        where ms2m runs (default ms2m-system)
  --agent-access MODE          how to reach the agents: auto (pod IP when routable, else a
                               port-forward), pod-ip, port-forward (default auto)
  --skip-kubelet               leave out the kubelet checkpoint probe (it counts as one NotFound
                               in each agent's ms2m_agent_failures_total)
  --timeout DURATION           per agent or broker call (default 10s)`,
  options: {
    "broker-secret": { type: "string" },
    "system-namespace": { type: "string" },
    "agent-access": { type: "string" },
    "skip-kubelet": { type: "boolean" },
    timeout: { type: "string" },
  },
  positionals: { min: 0, max: 0 },
  async run(ctx, _args, flags) {
    const access = (flags["agent-access"] as string | undefined) ?? "auto";
    if (!accessModes.includes(access as AgentAccessMode))
      throw new UsageError(`--agent-access must be one of ${accessModes.join(", ")}`);
    const kube = ctx.kube();
    const report = await runDoctor(kube, {
      systemNamespace: (flags["system-namespace"] as string | undefined) ?? "ms2m-system",
      namespace: kube.namespace,
      brokerSecret: flags["broker-secret"] as string | undefined,
      agentAccess: access as AgentAccessMode,
      timeoutMs: parseDuration((flags.timeout as string | undefined) ?? "10s"),
      skip: flags["skip-kubelet"] ? ["kubelet"] : [],
    });
    if (ctx.format === "human") ctx.io.out(renderReport(ctx.io, report));
    else printObject(ctx.io, ctx.format, report);
    return report.ok ? 0 : 1;
  },
};
