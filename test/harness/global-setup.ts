import type { TestProject } from "vitest/node";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { join } from "node:path";
import { pushProjectImages } from "../../tooling/images.ts";
import { REGISTRY_PORT, startRegistry, SYSTEM_NS } from "../../tooling/stack/index.ts";
import type { ClusterInfo, NodeRuntime } from "../../tooling/cluster/nodes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/** One real control plane with two simulated workers (node-a, node-b) for the `cluster` project. */
export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return setupLocalCluster(project, "simulated");
}

/**
 * The control plane with two workers of the given runtime, provided to the test files as
 * `inject("cluster")`. Real nodes (kubelet + CRI-O + runc + CRIU) also get the cluster's
 * registry with the project's images, built by `make images` (a no-op when up to date).
 */
export async function setupLocalCluster(
  project: TestProject,
  runtime: NodeRuntime,
): Promise<() => Promise<void>> {
  const started = Date.now();
  const { cp, cluster, controlPlaneMs, stop } = await startLocalCluster({ nodes: { runtime } });
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
  try {
    console.log(
      `[harness] control plane up in ${controlPlaneMs} ms, with ${runtime} nodes ${cluster.nodeNames().join(", ")} ` +
        `Ready in ${Date.now() - started} ms on ${cp.server}`,
    );
    if (runtime === "real") {
      const t = Date.now();
      registry = await startRegistry(cp.net.hostIp, { dir: join(cp.dir, "registry"), pidFile: cp.pidFile });
      cluster.info.images = await pushProjectImages(`${cp.net.hostIp}:${REGISTRY_PORT}`);
      console.log(`[harness] images built and pushed to the cluster's registry in ${Date.now() - t} ms`);
    }
  } catch (err) {
    await registry?.stop();
    await stop();
    throw err;
  }
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
    await registry?.stop();
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
    // No CRD (no test of this run installed ms2m): no migrations.
    const migrations = (await kc
      .makeApiClient(k8s.CustomObjectsApi)
      .listClusterCustomObject({
        group: "migration.ms2m.io",
        version: "v1alpha1",
        plural: "statefulmigrations",
      })
      .catch((err: unknown) => {
        if ((err as { code?: number }).code === 404) return { items: [] };
        throw err;
      })) as { items: { metadata?: { uid?: string } }[] };
    const uids = migrations.items.flatMap((m) => (m.metadata?.uid ? [m.metadata.uid] : []));
    const matchers = namespaces.map((ns) => runMatcher(ns, [], uids));
    return await deleteBrokerObjects((name) => matchers.some((m) => m(name)));
  } finally {
    await kc.closeConnections();
  }
}
