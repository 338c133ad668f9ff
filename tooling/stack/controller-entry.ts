// The ms2m-controller image as a simulated node runs it: the Deployment's container, unchanged,
// with the mount namespace the simulator cannot give a process emulated (sim-paths.ts, as for the
// agent), and the leader-election identity the pod's name (the simulator sets HOSTNAME to it; a
// real pod's hostname is its name, the simulated process shares the host's).
import { inClusterConfigThroughRoot, rewriteEnvPaths } from "./sim-paths.ts";

process.env.POD_NAME ??= process.env.HOSTNAME;
// A default of the controller's config that points into a mount, made explicit to be rewritten.
rewriteEnvPaths({ AGENT_TOKEN_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/token" });
await inClusterConfigThroughRoot();

await import("../../cmd/ms2m-controller/main.ts");
