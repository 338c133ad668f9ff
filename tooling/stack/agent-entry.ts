// The ms2m-agent image as a simulated node runs it: the DaemonSet's container, unchanged, with
// the mount namespace the simulator cannot give a process emulated (sim-paths.ts): paths in the
// environment under a volume mount are rewritten to the host folder, and the in-cluster config
// (ServiceAccount token, CA) is read through the container's root folder.
import { inClusterConfigThroughRoot, rewriteEnvPaths } from "./sim-paths.ts";

// A default of the agent's config that points into a mount, made explicit to be rewritten.
rewriteEnvPaths({ AGENT_KUBELET_TOKEN_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/token" });
// The Jobs' `send` and `cleanup` use no Kubernetes client: not loading it keeps their start short.
if (process.argv[2] !== "send" && process.argv[2] !== "cleanup") await inClusterConfigThroughRoot();

await import("../../cmd/ms2m-agent/main.ts");
