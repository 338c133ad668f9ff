import type { TestProject } from "vitest/node";
import { ControlPlane } from "./control-plane.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: {
      kubeconfig: string;
      server: string;
      dir: string;
      slot: number;
      hostIp: string;
      caFile: string;
    };
  }
}

/** One real control plane for the whole `cluster` test project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const cp = await ControlPlane.start();
  console.log(`[harness] control plane up in ${Date.now() - started} ms on ${cp.server}`);
  project.provide("cluster", {
    kubeconfig: cp.adminKubeconfig,
    server: cp.server,
    dir: cp.dir,
    slot: cp.net.slot,
    hostIp: cp.net.hostIp,
    caFile: cp.pki.ca.cert,
  });
  return async () => {
    await cp.stop();
  };
}
