import type { TestProject } from "vitest/node";
import { startLocalCluster } from "./local-cluster.ts";
import type { ClusterInfo } from "./nodes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/** One real control plane with two simulated workers (node-a, node-b) for the `cluster` project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const { cp, cluster, controlPlaneMs, stop } = await startLocalCluster();
  console.log(
    `[harness] control plane up in ${controlPlaneMs} ms, with nodes ${cluster.nodeNames().join(", ")} Ready ` +
      `in ${Date.now() - started} ms on ${cp.server}`,
  );
  project.provide("cluster", cluster.info);
  return stop;
}
