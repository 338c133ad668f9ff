import { execFile } from "node:child_process";
import { inject } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { controlPlaneBinaries } from "./binaries.ts";
import { serviceAccountToken } from "./stack.ts";

export { serviceAccountToken };

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What a `cluster` test gets: the shared control plane, an admin client, the real kubectl. */
export function clusterContext() {
  const cluster = inject("cluster");
  const kubeConfig = () => {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    return kc;
  };

  /** Runs the real kubectl (the version built with the control plane) as the admin. */
  async function kubectl(args: string[], input?: string, extraArgs: string[] = []): Promise<KubectlResult> {
    const { kubeBin } = await controlPlaneBinaries();
    return new Promise((resolve) => {
      const child = execFile(
        `${kubeBin}/kubectl`,
        [...extraArgs, ...args],
        { env: { ...process.env, KUBECONFIG: cluster.kubeconfig }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
      else child.stdin?.end();
    });
  }

  /** kubectl authenticated only by a bearer token (no admin client certificate). */
  async function kubectlWithToken(token: string, args: string[], input?: string): Promise<KubectlResult> {
    return kubectl(args, input, [
      "--kubeconfig=/dev/null",
      `--server=${cluster.server}`,
      `--certificate-authority=${cluster.caFile}`,
      `--token=${token}`,
    ]);
  }

  return { cluster, kubeConfig, kubectl, kubectlWithToken };
}

/** A KubeConfig that acts as a ServiceAccount (bearer token only). */
export async function kubeConfigAs(
  admin: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<k8s.KubeConfig> {
  const token = await serviceAccountToken(admin, namespace, name);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("admin kubeconfig has no cluster");
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return kc;
}
