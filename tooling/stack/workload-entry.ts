// The reference workload image (workload/consumer.ts) as a simulated node runs it, with the mount
// namespace the simulator cannot give (sim-paths.ts): a path under a mount — the
// terminationMessagePath (STATE_FILE=/dev/termination-log, bench:eval --kubeconfig), a hostPath
// volume — is the host's file the kubelet would read, not the host's own /dev.
import { fileURLToPath } from "node:url";
import { rewriteEnvPaths } from "./sim-paths.ts";

rewriteEnvPaths();
// The consumer runs as the program it is (it starts only when it is the process's main module).
process.argv[1] = fileURLToPath(new URL("../../workload/consumer.ts", import.meta.url));
await import("../../workload/consumer.ts");
