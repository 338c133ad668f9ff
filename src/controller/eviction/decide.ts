// What to answer an eviction of a pod a MigrationPolicy selects, and the live migration it
// starts. Independent of how the eviction arrives: today the admission webhook on pods/eviction
// (webhook.ts), tomorrow an EvictionRequest (KEP-4563) controller calls `decide` the same way.
//
// The answers follow the eviction API's own semantics, which `kubectl drain` and the autoscaler
// already handle: 429 (TooManyRequests) means "not now, retry" (as a PodDisruptionBudget says
// it), 404 means "that pod is gone". While the pod moves, every eviction gets 429; once a
// ShadowPod migration has deleted the source, retries find no pod (404 from the API server).
// A Sequential migration brings the pod back under the same name on another node, and a drain
// retries by name: an eviction of the new pod that a recent migration away from a node being
// drained produced is answered 404 (the pod it meant is gone), so the drain completes.
import type { V1Node, V1Pod, V1PodDisruptionBudget } from "@kubernetes/client-node";
import {
  ANNOTATION_MIGRATE_ON_EVICTION,
  apiVersion,
  kind,
  type MigrationPolicy,
  type StatefulMigration,
} from "../../api/v1alpha1/index.ts";
import { controllerOf } from "../../kube/owners.ts";
import { LABEL_MIGRATION, LABEL_ROLE } from "../names.ts";
import { selectorMatches } from "../../kube/selectors.ts";

/** Labels the eviction path puts on the migrations it starts. */
export const LABEL_TRIGGER = "migration.ms2m.io/trigger";
export const LABEL_POLICY = "migration.ms2m.io/policy";
export const LABEL_SOURCE_NODE = "migration.ms2m.io/source-node";
export const LABEL_EVICTED_POD_UID = "migration.ms2m.io/evicted-pod-uid";
export const ANNOTATION_EVICTED_POD = "migration.ms2m.io/evicted-pod";
export const TRIGGER_EVICTION = "eviction";

/** How long after a Sequential migration an eviction of its new pod counts as a stale retry. */
export const STALE_RETRY_WINDOW_MS = 10 * 60_000;

/** The cluster as the eviction path needs it (reads are live: an eviction must not act on a stale cache). */
export interface EvictionClusterPort {
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  getNode(name: string): Promise<V1Node | undefined>;
  listPolicies(namespace: string): Promise<MigrationPolicy[]>;
  listPodDisruptionBudgets(namespace: string): Promise<V1PodDisruptionBudget[]>;
  /** Migrations started by evictions, in the namespace. */
  listEvictionMigrations(namespace: string): Promise<StatefulMigration[]>;
  /** AlreadyExists is not an error: the existing object is returned. */
  createMigration(namespace: string, m: StatefulMigration): Promise<StatefulMigration>;
  /** Best effort: counts on the policy's status. */
  recordStarted(policy: MigrationPolicy, migration: string): Promise<void>;
}

export type EvictionAnswer =
  | { allowed: true; why: string }
  | {
      allowed: false;
      code: 429 | 404;
      reason: "TooManyRequests" | "NotFound";
      message: string;
      migration?: string;
    };

const allow = (why: string): EvictionAnswer => ({ allowed: true, why });
const retry = (message: string, migration?: string): EvictionAnswer => ({
  allowed: false,
  code: 429,
  reason: "TooManyRequests",
  message,
  ...(migration ? { migration } : {}),
});

const active = (m: StatefulMigration) => m.status?.phase !== "Completed" && m.status?.phase !== "Failed";

/** Deterministic per pod incarnation: a retried eviction finds the migration it started. */
export function evictionMigrationName(pod: string, podUid: string): string {
  const suffix = `-${podUid.replaceAll("-", "").slice(0, 8)}`;
  return `evict-${pod}`.slice(0, 253 - suffix.length).replace(/[-.]+$/, "") + suffix;
}

/** The policy that selects the pod (the first by name when several do). */
export function policyFor(pod: V1Pod, policies: MigrationPolicy[]): MigrationPolicy | undefined {
  return policies
    .filter((p) => selectorMatches(p.spec.selector, pod.metadata?.labels ?? {}))
    .sort((a, b) => (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""))[0];
}

export interface DecideOptions {
  /** The eviction is a dry run: answer, but create nothing. */
  dryRun?: boolean;
  now?: number;
}

export async function decide(
  cluster: EvictionClusterPort,
  namespace: string,
  podName: string,
  opts: DecideOptions = {},
): Promise<EvictionAnswer> {
  const now = opts.now ?? Date.now();
  const pod = await cluster.getPod(namespace, podName);
  if (!pod) return allow("no such pod");
  if (pod.metadata?.deletionTimestamp) return allow("the pod is already being deleted");
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed")
    return allow("the pod has finished");
  const owner = controllerOf(pod);
  if (owner?.kind === "DaemonSet") return allow("DaemonSet pods are not migrated");
  if (owner?.kind === "Node") return allow("static pods are not migrated");
  // A migration's target (Sequential: it carries the evicted pod's name, so a drain's retry by
  // name lands on it) is not evicted while it restores and replays: "retry", until it is done.
  if (pod.metadata?.labels?.[LABEL_ROLE] === "target") {
    const m = pod.metadata.labels[LABEL_MIGRATION] ?? "";
    return retry(
      `pod ${podName} is the target of the live migration StatefulMigration ${m}, which is not finished; ` +
        `retry the eviction once it is`,
      m,
    );
  }
  if (pod.metadata?.annotations?.[ANNOTATION_MIGRATE_ON_EVICTION] === "false") {
    return allow(`the pod opted out (${ANNOTATION_MIGRATE_ON_EVICTION}=false)`);
  }
  const policy = policyFor(pod, await cluster.listPolicies(namespace));
  if (!policy) return allow("no MigrationPolicy selects the pod");

  const migrations = await cluster.listEvictionMigrations(namespace);
  const stale = await staleRetry(cluster, pod, migrations, now);
  if (stale) return stale;

  const uid = pod.metadata?.uid ?? "";
  const name = evictionMigrationName(podName, uid);
  const existing = migrations.find((m) => m.metadata.name === name);
  if (existing) return answerFor(existing, podName);

  const sourceNode = pod.spec?.nodeName ?? "";
  const policyName = policy.metadata.name ?? "";
  const running = migrations.filter(
    (m) =>
      active(m) &&
      m.metadata.labels?.[LABEL_POLICY] === policyName &&
      m.metadata.labels?.[LABEL_SOURCE_NODE] === sourceNode,
  );
  if (running.length >= policy.spec.maxConcurrentPerNode) {
    return retry(
      `pod ${podName} will be migrated live by ms2m, after one of the ${running.length} migration(s) ` +
        `MigrationPolicy ${policyName} runs from node ${sourceNode} finishes (maxConcurrentPerNode ` +
        `${policy.spec.maxConcurrentPerNode}): retry the eviction`,
    );
  }

  // A migration that takes the pod's name (Sequential) stops it for the restore: a disruption.
  // A ShadowPod migration never lowers availability, so a budget has nothing to object to.
  const disruptive =
    (policy.spec.migrationStrategy ?? (owner?.kind === "StatefulSet" ? "Sequential" : "ShadowPod")) ===
    "Sequential";
  if (disruptive) {
    for (const pdb of await cluster.listPodDisruptionBudgets(namespace)) {
      if (!pdb.spec?.selector || !selectorMatches(pdb.spec.selector, pod.metadata?.labels ?? {})) continue;
      if ((pdb.status?.disruptionsAllowed ?? 0) < 1) {
        return retry(
          `Cannot migrate pod ${podName} live: it would violate PodDisruptionBudget ${pdb.metadata?.name} ` +
            `(it takes the pod's name, so the pod stops for the restore; the budget allows no disruption now)`,
        );
      }
    }
  }

  const m = migrationFor(policy, pod, name);
  if (opts.dryRun) return retry(`pod ${podName} would be migrated live by ms2m (dry run)`, name);
  const created = await cluster.createMigration(namespace, m);
  if (created.metadata.uid && created.metadata.name === name && !created.status) {
    await cluster.recordStarted(policy, name).catch(() => undefined);
  }
  return answerFor(created, podName);
}

/** 429 while the migration runs (or failed: the pod keeps serving), with what the user can do. */
function answerFor(m: StatefulMigration, podName: string): EvictionAnswer {
  const name = m.metadata.name ?? "";
  if (m.status?.phase === "Failed") {
    const f = m.status.failure;
    return retry(
      `live migration of pod ${podName} failed (StatefulMigration ${name}: ${f?.reason ?? "Failed"}: ${f?.message ?? ""}); ` +
        `the pod keeps serving. Fix the cause and delete the StatefulMigration to retry, or annotate the pod ` +
        `${ANNOTATION_MIGRATE_ON_EVICTION}=false to evict it normally`,
      name,
    );
  }
  const phase = m.status?.phase ?? "Pending";
  return retry(
    `pod ${podName} is being migrated live to another node by ms2m (StatefulMigration ${name}, ${phase}); ` +
      `retry the eviction: it goes through once the pod has moved`,
    name,
  );
}

/**
 * An eviction of a pod that a recent Sequential migration recreated under the same name, away
 * from a node that is still cordoned: the retry of that node's drain, not a new eviction.
 */
async function staleRetry(
  cluster: EvictionClusterPort,
  pod: V1Pod,
  migrations: StatefulMigration[],
  now: number,
): Promise<EvictionAnswer | undefined> {
  const name = pod.metadata?.name ?? "";
  for (const m of migrations) {
    const s = m.status;
    if (!s || s.targetPod !== name || s.targetNode !== pod.spec?.nodeName) continue;
    if (s.sourcePodUID === pod.metadata?.uid) continue;
    // Still finishing (the hand-over already took the target label off): not a new eviction yet.
    if (active(m)) {
      return retry(
        `pod ${name} is the target of the live migration StatefulMigration ${m.metadata.name}, which is not ` +
          `finished; retry the eviction once it is`,
        m.metadata.name ?? "",
      );
    }
    if (s.phase !== "Completed") continue;
    const done = s.completionTime ? Date.parse(s.completionTime) : 0;
    if (now - done > STALE_RETRY_WINDOW_MS) continue;
    const here = await cluster.getNode(pod.spec?.nodeName ?? "");
    const source = await cluster.getNode(s.sourceNode ?? "");
    // This node is not being drained, the one the pod left is: the eviction was meant for the pod that left.
    if (here?.spec?.unschedulable || !source?.spec?.unschedulable) continue;
    return {
      allowed: false,
      code: 404,
      reason: "NotFound",
      message: `pod ${name} on ${s.sourceNode} was migrated live to ${s.targetNode} (StatefulMigration ${m.metadata.name}); the pod this eviction was for is gone`,
      migration: m.metadata.name ?? "",
    };
  }
  return undefined;
}

function migrationFor(policy: MigrationPolicy, pod: V1Pod, name: string): StatefulMigration {
  const p = policy.spec;
  return {
    apiVersion,
    kind,
    metadata: {
      name,
      namespace: pod.metadata?.namespace,
      labels: {
        [LABEL_TRIGGER]: TRIGGER_EVICTION,
        [LABEL_POLICY]: policy.metadata.name ?? "",
        [LABEL_SOURCE_NODE]: pod.spec?.nodeName ?? "",
        [LABEL_EVICTED_POD_UID]: pod.metadata?.uid ?? "",
      },
      annotations: { [ANNOTATION_EVICTED_POD]: pod.metadata?.name ?? "" },
    },
    spec: {
      sourcePod: pod.metadata?.name ?? "",
      transferMode: p.transferMode,
      replayCutoffSeconds: p.replayCutoffSeconds,
      onRestoreFailure: p.onRestoreFailure,
      ...(p.checkpointImageRepository ? { checkpointImageRepository: p.checkpointImageRepository } : {}),
      ...(p.migrationStrategy ? { migrationStrategy: p.migrationStrategy } : {}),
      ...(p.messageQueueConfig ? { messageQueueConfig: p.messageQueueConfig } : {}),
      ...(p.targetNodeSelector ? { targetNodeSelector: p.targetNodeSelector } : {}),
      ...(p.encryption ? { encryption: p.encryption } : {}),
    },
  };
}
