// Cluster fixtures for the phase tests: three nodes, and a pod owned by a Deployment's
// ReplicaSet, by a StatefulSet, or by nobody; plus a loop that plays kubelet and workload
// controllers between reconciles.
import type { V1Pod } from "@kubernetes/client-node";
import { controllerOf } from "../../../src/kube/owners.ts";
import { selectorMatches } from "../../../src/kube/selectors.ts";
import { StatefulMigrationReconciler as Reconciler } from "../../../src/controller/reconciler.ts";
import { makeWorld, readyNode, type World } from "./fakes.ts";
import type { StatefulMigrationSpecInput } from "../../../src/api/v1alpha1/index.ts";

export type Kind = "Deployment" | "StatefulSet" | "Bare";

export function podSpec(): V1Pod["spec"] {
  return {
    nodeName: "node-a",
    serviceAccountName: "consumer",
    priority: 0,
    containers: [
      {
        name: "app",
        image: "registry.test/consumer:1",
        env: [{ name: "QUEUE", value: "orders" }],
        resources: { requests: { cpu: "100m" }, limits: { memory: "64Mi" } },
        readinessProbe: { exec: { command: ["true"] } },
        volumeMounts: [{ name: "data", mountPath: "/data" }],
        securityContext: { runAsNonRoot: true },
      },
    ],
    volumes: [{ name: "data", emptyDir: {} }],
    tolerations: [{ key: "dedicated", operator: "Exists" }],
  };
}

export function setup(
  kind: Kind,
  spec: Partial<StatefulMigrationSpecInput> = {},
): World & { reconciler: Reconciler; source: V1Pod } {
  const world = makeWorld();
  const { cluster } = world;
  for (const n of ["node-a", "node-b", "node-c"]) cluster.nodes.set(n, readyNode(n));
  let source: V1Pod;
  if (kind === "Deployment") {
    cluster.replicaSets.set("default/web-7d9f", {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: {
        name: "web-7d9f",
        namespace: "default",
        uid: "rs-uid",
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "dep-uid", controller: true },
        ],
      },
      spec: { replicas: 2, selector: { matchLabels: { app: "web", "pod-template-hash": "7d9f" } } },
    });
    source = cluster.addPod({
      metadata: {
        name: "web-7d9f-abcde",
        labels: { app: "web", "pod-template-hash": "7d9f", tier: "backend" },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f", uid: "rs-uid", controller: true },
        ],
      },
      spec: podSpec(),
    });
    // The ReplicaSet controller: adopts matching orphans.
    cluster.onPodWrite = (pod) =>
      adopt(world, pod, "ReplicaSet", "web-7d9f", "rs-uid", { app: "web", "pod-template-hash": "7d9f" });
  } else if (kind === "StatefulSet") {
    cluster.statefulSets.set("default/db", {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "db", namespace: "default", uid: "sts-uid" },
      spec: { replicas: 3, serviceName: "db", selector: { matchLabels: { app: "db" } }, template: {} },
    });
    source = cluster.addPod({
      metadata: {
        name: "db-1",
        labels: {
          app: "db",
          "statefulset.kubernetes.io/pod-name": "db-1",
          "controller-revision-hash": "db-5f6",
        },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts-uid", controller: true },
        ],
      },
      spec: { ...podSpec()!, hostname: "db-1", subdomain: "db" },
    });
    cluster.onPodWrite = (pod) => adopt(world, pod, "StatefulSet", "db", "sts-uid", { app: "db" });
  } else {
    source = cluster.addPod({ metadata: { name: "solo", labels: { app: "solo" } }, spec: podSpec() });
  }
  cluster.markReady(source.metadata!.name!);
  cluster.addMigration("mig", {
    sourcePod: source.metadata!.name!,
    targetNode: "node-b",
    checkpointImageRepository: "registry.test/ckpt",
    messageQueueConfig: { queueName: "orders", exchangeName: "orders-x", brokerUrl: "amqp://broker:5672" },
    ...spec,
  });
  return { ...world, reconciler: new Reconciler(world.deps), source: cluster.pod(source.metadata!.name!)! };
}

function adopt(
  world: World,
  pod: V1Pod,
  kind: string,
  name: string,
  uid: string,
  matchLabels: Record<string, string>,
): void {
  if (controllerOf(pod) || pod.metadata?.deletionTimestamp) return;
  if (!selectorMatches({ matchLabels }, pod.metadata?.labels ?? {})) return;
  const stored = world.cluster.pod(pod.metadata!.name!)!;
  stored.metadata!.ownerReferences = [
    ...(stored.metadata!.ownerReferences ?? []),
    { apiVersion: "apps/v1", kind, name, uid, controller: true, blockOwnerDeletion: true },
  ];
  stored.metadata!.resourceVersion = world.cluster.nextRv();
}

export interface RunOptions {
  /** Bring created pods up (the kubelet restoring them). */
  kubelet?: boolean;
  maxRounds?: number;
  /** Between rounds, before the kubelet acts. */
  between?: (round: number) => void;
}

/** Reconciles until the migration is Completed/Failed (or gone); returns the errors seen. */
export async function drive(
  w: World & { reconciler: Reconciler },
  opts: RunOptions = {},
): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (let round = 0; round < (opts.maxRounds ?? 60); round++) {
    opts.between?.(round);
    try {
      await w.reconciler.reconcile({ namespace: "default", name: "mig" });
    } catch (err) {
      // RetryAfter is what the engine retries; anything else is a simulated crash.
      errors.push(err);
    }
    const m = w.cluster.migrations.get("default/mig");
    if (!m) return errors;
    if ((m.status?.phase === "Completed" || m.status?.phase === "Failed") && !m.metadata.deletionTimestamp)
      return errors;
    if (opts.kubelet ?? true) playKubelet(w);
    w.clock.advance(10);
  }
  return errors;
}

/** Pods on a node start and become ready; deleted pods stop. */
export function playKubelet(w: World): void {
  for (const pod of [...w.cluster.pods.values()]) {
    const name = pod.metadata!.name!;
    if (pod.metadata?.deletionTimestamp) w.cluster.kubeletConfirm(name);
    else if (pod.status?.phase === "Pending" && pod.spec?.nodeName) w.cluster.markReady(name);
  }
}
