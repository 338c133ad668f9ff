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
  summary: "Check that the cluster can migrate, and say what is wrong if not",
  usage: "kubectl ms2m doctor [--broker-secret NAME[:KEY] -n APP_NAMESPACE] [flags]",
  description: `Checks, in order, and says what to do about each problem:
  CRD          the StatefulMigration CRD is installed, Established and serves v1alpha1
  controller   the controller's pods are Ready and one of them leads (holds the Lease)
  agents       an ms2m-agent is Ready on every Ready node, and the agents' TLS Secret exists
  runtime      each node's container runtime can checkpoint and restore (asked of its agent)
  kubelet      each node's kubelet checkpoint API answers its agent (a probe of a pod that does
               not exist: nothing is checkpointed)
  RBAC         ms2m's ServiceAccounts have the permissions they need
  broker       with --broker-secret: the Secret exists, the controller may read it, the broker
               accepts a connection from here
The agents are asked as the controller asks them (its ServiceAccount's token, the agents' CA), so
doctor needs rights to create a token for ms2m-controller and to read the agents' Secret.`,
  flags: `  --broker-secret NAME[:KEY]   also check this broker Secret (in -n, KEY default url)
  --system-namespace NS        where ms2m runs (default ms2m-system)
  --agent-access MODE          how to reach the agents: auto (pod IP when it answers, else a
                               port-forward), pod-ip, port-forward (default auto)
  --skip-kubelet               leave out the kubelet checkpoint probe (it counts as one NotFound
                               in each agent's ms2m_agent_failures_total)
  --timeout DURATION           per agent or broker call (default 10s)`,
  examples: `  kubectl ms2m doctor
  kubectl ms2m doctor -n shop --broker-secret rabbitmq-url
  kubectl ms2m doctor -o json`,
  exitCodes: {
    0: "ready: no check failed (warnings allowed)",
    1: "not ready: a check failed (each failure says what to do)",
  },
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
    const timeoutMs = parseDuration((flags.timeout as string | undefined) ?? "10s");
    const kube = ctx.kube();
    const report = await runDoctor(kube, {
      systemNamespace: (flags["system-namespace"] as string | undefined) ?? "ms2m-system",
      namespace: kube.namespace,
      brokerSecret: flags["broker-secret"] as string | undefined,
      agentAccess: access as AgentAccessMode,
      timeoutMs,
      skip: flags["skip-kubelet"] ? ["kubelet"] : [],
    });
    if (ctx.format === "human") ctx.io.out(renderReport(ctx.io, report));
    else printObject(ctx.io, ctx.format, report);
    return report.ok ? 0 : 1;
  },
};
