// What a simulated node cannot give a process it runs: a mount namespace. The simulator passes a
// container's mounts as MS2M_MOUNTS (mountPath -> folder on the host, the terminationMessagePath
// included) and its root folder, where every mount is linked, as MS2M_CONTAINER_ROOT. The images'
// entries (agent-entry.ts, controller-entry.ts, workload-entry.ts) call rewriteEnvPaths() first:
// every absolute path in the environment that lies under a mount is rewritten to the host folder,
// as the mount namespace would resolve it. A restored container starts again with its spec's
// environment and the new node's mounts, so the paths are those of the node it runs on.

const mounts = Object.entries(JSON.parse(process.env.MS2M_MOUNTS ?? "{}") as Record<string, string>).sort(
  ([a], [b]) => b.length - a.length,
);

/** The container's root folder on the host ("" outside the simulator). */
export const containerRoot = process.env.MS2M_CONTAINER_ROOT ?? "";

/** Where `path` (as the container sees it) is on the host. */
export function hostPathOf(path: string): string {
  for (const [dest, source] of mounts) {
    const d = dest.replace(/\/+$/, "");
    if (path === d) return source;
    if (path.startsWith(`${d}/`)) return `${source}${path.slice(d.length)}`;
  }
  return path;
}

/**
 * Rewrites the environment's paths under mounts to the host's. `defaults`: settings whose
 * default points into a mount, made explicit first so that they are rewritten too.
 */
export function rewriteEnvPaths(defaults: Record<string, string> = {}): void {
  for (const [key, value] of Object.entries(defaults)) process.env[key] ??= value;
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("MS2M_") || value === undefined || !value.startsWith("/")) continue;
    process.env[key] = hostPathOf(value);
  }
}

/** The in-cluster config (ServiceAccount token, CA) read through the container's root folder. */
export async function inClusterConfigThroughRoot(): Promise<void> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const loadFromCluster = KubeConfig.prototype.loadFromCluster;
  KubeConfig.prototype.loadFromCluster = function (pathPrefix = "") {
    loadFromCluster.call(this, pathPrefix || containerRoot);
  };
}
