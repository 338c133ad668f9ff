// What a test file of the `cluster` and `real` projects gets from vitest's global setup: the
// shared cluster (`inject("cluster")`), an admin client, the real kubectl (tooling's).
import { inject } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { kubectlFor, serviceAccountToken, type KubectlResult } from "../../tooling/stack/index.ts";

export { serviceAccountToken, type KubectlResult };

/** What a `cluster` test gets: the shared control plane, an admin client, the real kubectl. */
export function clusterContext() {
  const cluster = inject("cluster");
  const kubeConfig = () => {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    return kc;
  };
  return { cluster, kubeConfig, ...kubectlFor(cluster) };
}

/** A KubeConfig that acts as a ServiceAccount (bearer token only). */
export async function kubeConfigAs(
  admin: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<k8s.KubeConfig> {
  const token = await serviceAccountToken(admin, namespace, name);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("admin kubeconfig has no cluster");
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return kc;
}
