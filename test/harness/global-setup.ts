import type { TestProject } from "vitest/node";
import { ControlPlane } from "./control-plane.ts";
import { TestCluster, type ClusterInfo } from "./nodes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/** One real control plane with two simulated workers (node-a, node-b) for the `cluster` project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const cp = await ControlPlane.start();
  const controlPlaneMs = Date.now() - started;
  let cluster: TestCluster;
  try {
    cluster = await TestCluster.start({
      kubeconfig: cp.adminKubeconfig,
      server: cp.server,
      dir: cp.dir,
      slot: cp.net.slot,
      hostIp: cp.net.hostIp,
      caFile: cp.pki.ca.cert,
    });
  } catch (err) {
    await cp.stop();
    throw err;
  }
  console.log(
    `[harness] control plane up in ${controlPlaneMs} ms, with nodes ${cluster.nodeNames().join(", ")} Ready ` +
      `in ${Date.now() - started} ms on ${cp.server}`,
  );
  project.provide("cluster", cluster.info);
  return async () => {
    await cluster.stop();
    await cp.stop();
  };
}
