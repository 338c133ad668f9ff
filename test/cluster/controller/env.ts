// The controller's cluster tests on the shared control plane of vitest's global setup: the
// stack helpers (tooling/stack, free of vitest) bound to `inject("cluster")`.
import { clusterContext } from "../../harness/context.ts";
import { stackEnv } from "../../../tooling/stack/index.ts";

export * from "../../../tooling/stack/index.ts";

export function controllerTestEnv() {
  const ctx = clusterContext();
  // `cluster` is the TestCluster handle (as before); the ClusterInfo stays reachable as cluster.info.
  return { ...ctx, ...stackEnv(ctx.cluster) };
}
