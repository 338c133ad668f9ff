import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import type { Dispatcher } from "undici";

/**
 * A KubeConfig whose API calls share one connection pool per cluster and user. client-node 2.x
 * builds a new undici Agent for every request (applySecurityAuthentication), so every API call
 * paid a TCP connect and a TLS handshake with kube-apiserver, and the idle sockets piled up
 * until their keep-alive timeout. Here the first Agent is kept and reused: requests ride
 * kept-alive connections, as client-go's transport does. The bearer token is a header set per
 * request, so a rotated ServiceAccount token is still picked up; the key includes the TLS
 * material the kubeconfig names, so a changed CA or client certificate gets a new pool.
 */
export class PooledKubeConfig extends KubeConfig {
  private readonly pools = new Map<string, Dispatcher>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    const key = JSON.stringify([
      cluster?.name,
      cluster?.server,
      cluster?.caFile,
      cluster?.caData,
      cluster?.skipTLSVerify,
      user?.name,
      user?.certFile,
      user?.certData,
      user?.keyFile,
      user?.keyData,
    ]);
    const pooled = this.pools.get(key);
    if (pooled === undefined) {
      this.pools.set(key, fresh);
      return;
    }
    // The fresh Agent never connected: nothing to wait for.
    void fresh.close().catch(() => undefined);
    context.setDispatcher(pooled);
  }

  /** Closes the pooled connections (shutdown, tests). */
  async closeConnections(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }
}

/**
 * Loads a KubeConfig: the given file, else the in-cluster ServiceAccount when running in a pod,
 * else the default locations ($KUBECONFIG, ~/.kube/config).
 */
export function loadKubeConfig(kubeconfigPath?: string): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
