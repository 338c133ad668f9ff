import { KubeConfig } from "@kubernetes/client-node";

/**
 * Loads a KubeConfig: the given file, else the in-cluster ServiceAccount when running in a pod,
 * else the default locations ($KUBECONFIG, ~/.kube/config).
 */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
