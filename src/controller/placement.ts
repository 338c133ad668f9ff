// Choosing a target node when spec.targetNode is omitted: a node the pod could be scheduled on,
// judged as the scheduler would for this pod (readiness, cordon, taints vs tolerations,
// nodeSelector and required node affinity, the migration's targetNodeSelector, resource requests
// against allocatable minus what the node already runs) and that can restore (the runtime
// preflight). Among the nodes that fit, the one with the most room left (the scheduler's
// LeastAllocated scoring). The verdict on every node becomes status.targetNodeReason and an Event.
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { parseQuantity } from "../kube/quantity.ts";
import type { PhaseContext } from "./context.ts";
import { fail } from "./failures.ts";
import { isNodeReady, nodeMismatch } from "./pods.ts";
import { parseRuntimeVersion, runtimeOf } from "../checkpoint/runtime-config.ts";
import type { Transport } from "./transfer-modes/index.ts";

export interface Requests {
  cpu: number;
  memory: number;
}

/** What the pod asks the scheduler for: containers' requests summed, init containers' maximum, overhead. */
export function podRequests(pod: V1Pod): Requests {
  const sum = (
    list: { resources?: { requests?: Record<string, string> } }[] | undefined,
    key: "cpu" | "memory",
  ) => (list ?? []).reduce((n, c) => n + (parseQuantity(c.resources?.requests?.[key]) || 0), 0);
  const maxInit = (key: "cpu" | "memory") =>
    Math.max(
      0,
      ...(pod.spec?.initContainers ?? []).map((c) => parseQuantity(c.resources?.requests?.[key]) || 0),
    );
  const overhead = (key: "cpu" | "memory") => parseQuantity(pod.spec?.overhead?.[key]) || 0;
  return {
    cpu: Math.max(sum(pod.spec?.containers, "cpu"), maxInit("cpu")) + overhead("cpu"),
    memory: Math.max(sum(pod.spec?.containers, "memory"), maxInit("memory")) + overhead("memory"),
  };
}

const terminated = (p: V1Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";

export interface Verdict {
  node: string;
  /** Why not, if it does not fit. */
  rejected?: string;
  /** Room left after the pod, as fractions of allocatable (for the score). */
  free?: { cpu: number; memory: number; cpuCores: number; memoryBytes: number };
}

/** Everything but the runtime check: the same rules the scheduler applies to this pod. */
export function judgeNode(
  pod: V1Pod,
  node: V1Node,
  placed: V1Pod[],
  opts: { sourceNode: string; selector?: Record<string, string> },
): Verdict {
  const name = node.metadata?.name ?? "";
  const no = (rejected: string): Verdict => ({ node: name, rejected });
  if (name === opts.sourceNode) return no("the source node");
  if (!isNodeReady(node)) return no("not Ready");
  if (node.spec?.unschedulable) return no("cordoned (unschedulable)");
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(opts.selector ?? {})) {
    if (labels[k] !== v) return no(`lacks label ${k}=${v} (targetNodeSelector)`);
  }
  const mismatch = nodeMismatch(pod, node);
  if (mismatch) return no(mismatch.replace(/^node /, ""));
  const want = podRequests(pod);
  const allocatable = node.status?.allocatable ?? node.status?.capacity ?? {};
  // A node that reports no allocatable (only fakes and bare test nodes) is not limited.
  const cpu = allocatable.cpu === undefined ? Infinity : parseQuantity(allocatable.cpu);
  const memory = allocatable.memory === undefined ? Infinity : parseQuantity(allocatable.memory);
  const used = placed.filter((p) => !terminated(p)).map(podRequests);
  const usedCpu = used.reduce((n, r) => n + r.cpu, 0);
  const usedMem = used.reduce((n, r) => n + r.memory, 0);
  const freeCpu = cpu - usedCpu - want.cpu;
  const freeMem = memory - usedMem - want.memory;
  if (Number.isFinite(cpu) && freeCpu < 0)
    return no(`insufficient cpu (${fmtCpu(cpu - usedCpu)} free, ${fmtCpu(want.cpu)} requested)`);
  if (Number.isFinite(memory) && freeMem < 0)
    return no(`insufficient memory (${fmtMem(memory - usedMem)} free, ${fmtMem(want.memory)} requested)`);
  return {
    node: name,
    free: {
      cpu: Number.isFinite(cpu) && cpu > 0 ? freeCpu / cpu : 0,
      memory: Number.isFinite(memory) && memory > 0 ? freeMem / memory : 0,
      cpuCores: freeCpu,
      memoryBytes: freeMem,
    },
  };
}

const fmtCpu = (cores: number) =>
  Number.isFinite(cores) ? `${Math.round(cores * 1000) / 1000} CPU` : "unlimited CPU";
const fmtMem = (bytes: number) =>
  Number.isFinite(bytes) ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : "unlimited memory";

/** The scheduler's LeastAllocated: the mean of the free fractions; ties by name. */
const score = (v: Verdict) => ((v.free?.cpu ?? 0) + (v.free?.memory ?? 0)) / 2;

/**
 * The target for `pod`, with the reason. Fails the migration (in Pending: nothing was frozen)
 * with every node's reason when none fits.
 */
export async function chooseTargetNode(
  ctx: PhaseContext,
  pod: V1Pod,
  args: { sourceNode: string; selector?: Record<string, string>; transport: Transport },
): Promise<{ node: V1Node; reason: string }> {
  const { cluster, runtime } = ctx.deps;
  const nodes = (await cluster.listNodes()).sort((a, b) =>
    (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
  );
  const verdicts = await Promise.all(
    nodes.map(async (n) => {
      const name = n.metadata?.name ?? "";
      const placed = name === args.sourceNode ? [] : await cluster.listPodsOnNode(name);
      return judgeNode(pod, n, placed, args);
    }),
  );
  // The runtime check only for the nodes that fit otherwise (it asks each node's agent).
  for (const v of verdicts) {
    if (v.rejected) continue;
    const node = nodes.find((n) => n.metadata?.name === v.node);
    const version = parseRuntimeVersion(node?.status?.nodeInfo?.containerRuntimeVersion);
    const probe = await runtime.probe(v.node, { runtime: runtimeOf(version), agentRequired: false });
    if (probe.state === "reported" && probe.report.restore === false) {
      v.rejected = `its runtime cannot restore (${probe.report.detail})`;
    } else if (args.transport.needsTargetAgent && probe.state === "skipped" && !probe.expected) {
      v.rejected = `no Ready ms2m-agent (a ${args.transport.name} transfer needs one)`;
    }
  }
  const fitting = verdicts
    .filter((v) => !v.rejected)
    .sort((a, b) => score(b) - score(a) || a.node.localeCompare(b.node));
  const others = verdicts
    .filter((v) => v.rejected && v.node !== args.sourceNode)
    .map((v) => `${v.node}: ${v.rejected}`);
  const best = fitting[0];
  if (!best) {
    return fail(
      "NoTargetNode",
      `no node can take pod ${pod.metadata?.name}: ${others.join("; ") || "there is no other node"}`,
    );
  }
  const room = `${fmtCpu(best.free!.cpuCores)} and ${fmtMem(best.free!.memoryBytes)} left after the pod`;
  const alternatives = fitting.slice(1).map((v) => `${v.node} (less room)`);
  const reason =
    `${best.node}: fits, ${room}` +
    (alternatives.length > 0 ? `; also fitting: ${alternatives.join(", ")}` : "") +
    (others.length > 0 ? `; not ${others.join("; not ")}` : "");
  return { node: nodes.find((n) => n.metadata?.name === best.node)!, reason };
}
