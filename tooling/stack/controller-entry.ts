// The ms2m-controller image as a simulated node runs it: the Deployment's container, unchanged,
// with the mount namespace the simulator cannot give a process emulated (as agent-entry.ts does
// for the agent). Paths in the environment under a volume mount (MS2M_MOUNTS) are rewritten to
// the host folder, the in-cluster config is read through the container's root folder, and the
// leader-election identity is the pod's name (the simulator sets HOSTNAME to it; a real pod's
// hostname is its name, the simulated process shares the host's).

const mounts = Object.entries(JSON.parse(process.env.MS2M_MOUNTS ?? "{}") as Record<string, string>).sort(
  ([a], [b]) => b.length - a.length,
);
const root = process.env.MS2M_CONTAINER_ROOT ?? "";

function hostPathOf(path: string): string {
  for (const [dest, source] of mounts) {
    const d = dest.replace(/\/+$/, "");
    if (path === d) return source;
    if (path.startsWith(`${d}/`)) return `${source}${path.slice(d.length)}`;
  }
  return path;
}

process.env.POD_NAME ??= process.env.HOSTNAME;
// Defaults of the controller's config that point into mounts, made explicit to be translated.
process.env.AGENT_TOKEN_FILE ??= "/var/run/secrets/kubernetes.io/serviceaccount/token";
for (const [key, value] of Object.entries(process.env)) {
  if (key.startsWith("MS2M_") || value === undefined || !value.startsWith("/")) continue;
  process.env[key] = hostPathOf(value);
}

const { KubeConfig } = await import("@kubernetes/client-node");
const loadFromCluster = KubeConfig.prototype.loadFromCluster;
KubeConfig.prototype.loadFromCluster = function (pathPrefix = "") {
  loadFromCluster.call(this, pathPrefix || root);
};

await import("../../cmd/ms2m-controller/main.ts");
