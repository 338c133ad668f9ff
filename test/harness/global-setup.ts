import type { TestProject } from "vitest/node";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { deleteBrokerObjects, runMatcher } from "./broker-cleanup.ts";
import { startLocalCluster } from "./local-cluster.ts";
import { SYSTEM_NS } from "./stack.ts";
import type { ClusterInfo } from "./nodes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/** One real control plane with two simulated workers (node-a, node-b) for the `cluster` project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const { cp, cluster, controlPlaneMs, stop } = await startLocalCluster();
  console.log(
    `[harness] control plane up in ${controlPlaneMs} ms, with nodes ${cluster.nodeNames().join(", ")} Ready ` +
      `in ${Date.now() - started} ms on ${cp.server}`,
  );
  project.provide("cluster", cluster.info);
  return async () => {
    // The tests' primary queues and exchanges (q.<ns>.…, ex.<ns>.…) and their migrations' replay
    // and status queues live on the shared broker, which outlives the cluster.
    const gone = await deleteTestBrokerObjects(cluster.info.kubeconfig).catch((err: unknown) => {
      console.error("[harness] broker cleanup:", err);
      return undefined;
    });
    if (gone)
      console.log(`[harness] broker: deleted ${gone.queues} queues, ${gone.exchanges} exchanges of this run`);
    await stop();
  };
}

/** Deletes the idle broker objects named after this cluster's namespaces and migrations. */
async function deleteTestBrokerObjects(kubeconfig: string): Promise<{ queues: number; exchanges: number }> {
  const kc = new PooledKubeConfig();
  kc.loadFromFile(kubeconfig);
  try {
    const system = new Set(["default", "kube-system", "kube-public", "kube-node-lease", SYSTEM_NS]);
    const namespaces = (await kc.makeApiClient(k8s.CoreV1Api).listNamespace()).items
      .map((n) => n.metadata?.name ?? "")
      .filter((n) => n && !system.has(n));
    const migrations = (await kc.makeApiClient(k8s.CustomObjectsApi).listClusterCustomObject({
      group: "migration.ms2m.io",
      version: "v1alpha1",
      plural: "statefulmigrations",
    })) as { items: { metadata?: { uid?: string } }[] };
    const uids = migrations.items.flatMap((m) => (m.metadata?.uid ? [m.metadata.uid] : []));
    const matchers = namespaces.map((ns) => runMatcher(ns, [], uids));
    return await deleteBrokerObjects((name) => matchers.some((m) => m(name)));
  } finally {
    await kc.closeConnections();
  }
}
