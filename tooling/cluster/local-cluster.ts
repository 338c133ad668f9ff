// A local cluster: the real control plane and the simulated nodes, started together and stopped
// in the right order (nodes first, their containers with them; then the control plane sweeps its
// slot). Used by the cluster tests' global setup and by the benchmarks.
import { ControlPlane, type ControlPlaneOptions } from "./control-plane.ts";
import { TestCluster, type TestClusterNodesOptions } from "./nodes.ts";

export interface LocalCluster {
  cp: ControlPlane;
  cluster: TestCluster;
  /** Milliseconds the control plane took to come up (the rest is the nodes). */
  controlPlaneMs: number;
  stop(): Promise<void>;
}

export async function startLocalCluster(
  options: { controlPlane?: ControlPlaneOptions; nodes?: TestClusterNodesOptions } = {},
): Promise<LocalCluster> {
  const started = Date.now();
  const cp = await ControlPlane.start(options.controlPlane);
  const controlPlaneMs = Date.now() - started;
  let cluster: TestCluster;
  try {
    cluster = await TestCluster.start(cp.clusterInfo, options.nodes);
  } catch (err) {
    await cp.stop();
    throw err;
  }
  return {
    cp,
    cluster,
    controlPlaneMs,
    stop: async () => {
      await cluster.stop().catch((err: unknown) => console.error("stopping nodes:", err));
      await cp.stop();
    },
  };
}
