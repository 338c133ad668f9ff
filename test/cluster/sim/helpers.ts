// Shared by the simulator's cluster tests: the cluster from global setup, kubectl, waits.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { inject } from "vitest";
import { controlPlaneBinaries } from "../../../tooling/cluster/binaries.ts";
import { waitFor } from "../../../tooling/exec.ts";
import { TestCluster } from "../../../tooling/cluster/nodes.ts";

export function simCluster() {
  const cluster = TestCluster.connect(inject("cluster"));
  const kc = cluster.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  return { cluster, kc, core, apps, rbac };
}

export async function kubectl(kubeconfig: string, args: string[]): Promise<string> {
  const { kubeBin } = await controlPlaneBinaries();
  return new Promise((resolve, reject) => {
    execFile(
      `${kubeBin}/kubectl`,
      args,
      { env: { ...process.env, KUBECONFIG: kubeconfig } },
      (err, out, stderr) => (err ? reject(new Error(`kubectl ${args.join(" ")}: ${stderr}`)) : resolve(out)),
    );
  });
}

export async function createNamespace(core: k8s.CoreV1Api, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name } } });
  await waitFor(
    `default ServiceAccount in ${name}`,
    () => core.readNamespacedServiceAccount({ name: "default", namespace: name }).then(() => true),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return name;
}

export async function waitForPod(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  what: string,
  ok: (pod: k8s.V1Pod) => boolean,
  timeoutMs = 30_000,
): Promise<k8s.V1Pod> {
  return waitFor(
    `pod ${namespace}/${name} ${what}`,
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace });
      return ok(pod) ? pod : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export const isReady = (pod: k8s.V1Pod) =>
  pod.status?.phase === "Running" &&
  pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

export async function waitForGone(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `pod ${namespace}/${name} gone`,
    async () => {
      try {
        await core.readNamespacedPod({ name, namespace });
        return undefined;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return true;
        throw err;
      }
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** A direct HTTPS call to a kubelet, as an agent on the node would make it. */
export async function kubeletCall(
  caFile: string,
  nodeIp: string,
  path: string,
  opts: { method?: "GET" | "POST"; token?: string } = {},
): Promise<{ status: number; body: string }> {
  const dispatcher = new Agent({ connect: { ca: readFileSync(caFile) } });
  try {
    const res = await request(`https://${nodeIp}:10250${path}`, {
      method: opts.method ?? "GET",
      dispatcher,
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

export async function saToken(core: k8s.CoreV1Api, namespace: string, name: string): Promise<string> {
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = res.status?.token;
  if (!token) throw new Error("no token");
  return token;
}

/** The counter app with a Downward API volume, pinned to a node. */
export function counterPod(name: string, nodeName: string, extra: Partial<k8s.V1PodSpec> = {}): k8s.V1Pod {
  return {
    metadata: { name, labels: { app: "counter" } },
    spec: {
      nodeName,
      terminationGracePeriodSeconds: 5,
      containers: [
        {
          name: "counter",
          image: "ms2m.test/counter:dev",
          imagePullPolicy: "IfNotPresent",
          volumeMounts: [{ name: "podinfo", mountPath: "/etc/podinfo" }],
        },
      ],
      volumes: [
        {
          name: "podinfo",
          downwardAPI: { items: [{ path: "name", fieldRef: { fieldPath: "metadata.name" } }] },
        },
      ],
      ...extra,
    },
  };
}

/** Waits until a container's log matches (the process is up and has said something). */
export async function waitForLog(
  cluster: TestCluster,
  node: string,
  namespace: string,
  pod: string,
  pattern: RegExp,
  timeoutMs = 15_000,
): Promise<string> {
  return waitFor(
    `log of ${namespace}/${pod} matching ${pattern}`,
    async () => {
      const log = await cluster.node(node).containerLog(namespace, pod, "counter");
      return pattern.test(log) ? log : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}
