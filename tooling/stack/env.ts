// The clients, addresses and helpers every part of the stack works with.
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { controlPlaneBinaries } from "../cluster/binaries.ts";
import { TestCluster, type ClusterImages, type ClusterInfo } from "../cluster/nodes.ts";

/** What a kubectl run printed and how it exited. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A short-lived token of a ServiceAccount, from the TokenRequest API. */
export async function serviceAccountToken(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  audiences: string[] = [],
): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 3600, audiences } },
  });
  const token = res.status?.token;
  if (!token) throw new Error(`no token issued for ${namespace}/${name}`);
  return token;
}

export const SYSTEM_NS = "ms2m-system";

export const AGENT_IMAGE = "ghcr.io/ms2m/ms2m-agent:0.1.0";

export const CONSUMER_IMAGE = "ms2m.test/consumer:dev";

export const REGISTRY_PORT = 5000;

export const GROUP = "migration.ms2m.io";

export const VERSION = "v1alpha1";

export const PLURAL = "statefulmigrations";

/** Runs the real kubectl (the version built with the control plane) as the admin of `info`. */
export function kubectlFor(info: ClusterInfo) {
  async function kubectl(args: string[], input?: string, extraArgs: string[] = []): Promise<KubectlResult> {
    const { kubeBin } = await controlPlaneBinaries();
    return new Promise((resolve) => {
      const child = execFile(
        `${kubeBin}/kubectl`,
        [...extraArgs, ...args],
        { env: { ...process.env, KUBECONFIG: info.kubeconfig }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      child.stdin?.end(input);
    });
  }
  /** kubectl authenticated only by a bearer token (no admin client certificate). */
  async function kubectlWithToken(token: string, args: string[], input?: string): Promise<KubectlResult> {
    return kubectl(args, input, [
      "--kubeconfig=/dev/null",
      `--server=${info.server}`,
      `--certificate-authority=${info.caFile}`,
      `--token=${token}`,
    ]);
  }
  return { kubectl, kubectlWithToken };
}

/**
 * Everything the stack helpers need to reach a cluster (the local simulated one: `info` from
 * vitest's global setup, or `.cluster/info.json` of `make cluster-up`): admin clients, the real
 * kubectl, the simulated nodes, the broker and registry addresses as pods reach them.
 */
export function stackEnv(info: ClusterInfo) {
  const cluster = TestCluster.connect(info);
  const kubeConfig = () => {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(info.kubeconfig);
    return kc;
  };
  const kc = kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const hostIp = info.hostIp;
  const brokerUrl = `amqp://guest:guest@${hostIp}:5672`;
  return {
    ...kubectlFor(info),
    kubeConfig,
    cluster,
    kc,
    core,
    apps,
    custom,
    hostIp,
    brokerUrl,
    registry: `${hostIp}:${REGISTRY_PORT}`,
  };
}

export type StackEnv = ReturnType<typeof stackEnv>;

/** The same, under the name the controller tests use. */
export type ControllerTestEnv = StackEnv;

/** The images a real cluster runs (pushed to its registry by the global setup or the demo). */
export function imagesOf(env: Pick<StackEnv, "cluster">): ClusterImages {
  const images = env.cluster.info.images;
  if (!images) throw new Error("this cluster has no images in its registry (real runtime: pushImages first)");
  return images;
}

export async function workDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ms2m-${prefix}-`));
  await mkdir(dir, { recursive: true });
  return dir;
}
