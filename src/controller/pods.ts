// Reading pod and node state.
import type { V1Node, V1NodeSelectorRequirement, V1Pod } from "@kubernetes/client-node";

export const isTerminating = (pod: V1Pod) => pod.metadata?.deletionTimestamp !== undefined;

export function isPodReady(pod: V1Pod): boolean {
  return (
    pod.status?.phase === "Running" &&
    (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")
  );
}

/** All containers stopped (or the pod is terminal): the process state can no longer change. */
export function isPodStopped(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return true;
  if (pod.metadata?.deletionGracePeriodSeconds === 0) return true;
  const statuses = pod.status?.containerStatuses ?? [];
  return statuses.length > 0 && statuses.every((s) => s.state?.terminated !== undefined);
}

const fatalWaitingReasons = new Set([
  "CrashLoopBackOff",
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerError",
  "CreateContainerConfigError",
  "RunContainerError",
]);

/** Why a pod that should come up will not, if it visibly will not. */
export function podFailure(pod: V1Pod): string | undefined {
  if (pod.status?.phase === "Failed")
    return `pod failed: ${pod.status.reason ?? ""} ${pod.status.message ?? ""}`.trim();
  if (pod.status?.phase === "Succeeded") return "pod exited";
  for (const s of pod.status?.containerStatuses ?? []) {
    const reason = s.state?.waiting?.reason;
    if (reason && fatalWaitingReasons.has(reason)) {
      return `container ${s.name}: ${reason}${s.state?.waiting?.message ? `: ${s.state.waiting.message}` : ""}`;
    }
    const term = s.state?.terminated;
    if (term && term.exitCode !== 0)
      return `container ${s.name} exited with ${term.exitCode} (${term.reason ?? ""})`;
  }
  return undefined;
}

export function isNodeReady(node: V1Node): boolean {
  return (node.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function requirementMatches(req: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
      return value !== undefined && Number(value) > Number(values[0]);
    case "Lt":
      return value !== undefined && Number(value) < Number(values[0]);
    default:
      return false;
  }
}

/** Why the pod could not run on the node (nodeSelector, required node affinity, taints), if it could not. */
export function nodeMismatch(pod: V1Pod, node: V1Node): string | undefined {
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) {
    if (labels[k] !== v) return `node lacks label ${k}=${v} required by the pod's nodeSelector`;
  }
  const terms =
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (terms.length > 0) {
    const fits = terms.some(
      (t) =>
        (t.matchExpressions ?? []).every((r) => requirementMatches(r, labels[r.key])) &&
        (t.matchFields ?? []).every((r) =>
          requirementMatches(r, r.key === "metadata.name" ? node.metadata?.name : undefined),
        ),
    );
    if (!fits) return "node does not satisfy the pod's required node affinity";
  }
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect !== "NoSchedule" && taint.effect !== "NoExecute") continue;
    const tolerated = (pod.spec?.tolerations ?? []).some(
      (t) =>
        (t.effect === undefined || t.effect === "" || t.effect === taint.effect) &&
        (t.operator === "Exists"
          ? t.key === undefined || t.key === "" || t.key === taint.key
          : t.key === taint.key && (t.value ?? "") === (taint.value ?? "")),
    );
    if (!tolerated) return `node has taint ${taint.key}:${taint.effect} the pod does not tolerate`;
  }
  return undefined;
}
