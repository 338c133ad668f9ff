// The ms2m-agent image as a simulated node runs it: the DaemonSet's container, unchanged, with
// the mount namespace the simulator cannot give a process emulated. Paths in the environment
// that lie under a volume mount (MS2M_MOUNTS: mountPath -> folder on the host) are rewritten to
// the host folder, and the in-cluster config (ServiceAccount token, CA) is read through the
// container's root folder (MS2M_CONTAINER_ROOT), where the simulator links every mount.

const mounts = Object.entries(JSON.parse(process.env.MS2M_MOUNTS ?? "{}") as Record<string, string>).sort(
  ([a], [b]) => b.length - a.length,
);
const root = process.env.MS2M_CONTAINER_ROOT ?? "";

export function hostPathOf(path: string): string {
  for (const [dest, source] of mounts) {
    const d = dest.replace(/\/+$/, "");
    if (path === d) return source;
    if (path.startsWith(`${d}/`)) return `${source}${path.slice(d.length)}`;
  }
  return path;
}

// Defaults of the agent's config that point into mounts, made explicit so they get translated.
process.env.AGENT_KUBELET_TOKEN_FILE ??= "/var/run/secrets/kubernetes.io/serviceaccount/token";
for (const [key, value] of Object.entries(process.env)) {
  if (key.startsWith("MS2M_") || value === undefined || !value.startsWith("/")) continue;
  process.env[key] = hostPathOf(value);
}

// The Jobs' `send` and `cleanup` use no Kubernetes client: not loading it keeps their start short.
if (process.argv[2] !== "send" && process.argv[2] !== "cleanup") {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const loadFromCluster = KubeConfig.prototype.loadFromCluster;
  KubeConfig.prototype.loadFromCluster = function (pathPrefix = "") {
    loadFromCluster.call(this, pathPrefix || root);
  };
}

await import("../../cmd/ms2m-agent/main.ts");
