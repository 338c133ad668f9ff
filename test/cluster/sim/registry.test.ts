import { spawn, type ChildProcess } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushCheckpointImage } from "../../../src/checkpoint/registry.ts";
import { freePort, waitFor } from "../../../tooling/exec.ts";
import {
  counterPod,
  createNamespace,
  isReady,
  kubeletCall,
  simCluster,
  waitForLog,
  waitForPod,
} from "./helpers.ts";

// Registry images on simulated nodes: pulled with skopeo into the node's containers-storage
// (a checkpoint image restores from there), and pull failures with the kubelet's reasons.
const { cluster, core } = simCluster();
const hostIp = cluster.info.hostIp;
let ns: string;
let dir: string;
let registry: ChildProcess;
let registryHost: string;

beforeAll(async () => {
  ns = await createNamespace(core, "sim-registry");
  dir = await mkdtemp(join(tmpdir(), "ms2m-sim-registry-"));
  // The registry listens on the bridge address, which node namespaces reach directly.
  registryHost = `${hostIp}:${await freePort(hostIp)}`;
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${dir}/data } }`,
      `http: { addr: ${registryHost} }`,
      "",
    ].join("\n"),
  );
  registry = spawn("docker-registry", ["serve", cfg], { stdio: "ignore" });
  await waitFor(
    "registry",
    async () =>
      (await fetch(`http://${registryHost}/v2/`).catch(() => undefined))?.status === 200 ? true : undefined,
    { timeoutMs: 15_000, intervalMs: 100 },
  );
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  registry?.kill("SIGTERM");
  await rm(dir, { recursive: true, force: true });
});

describe("registry images", () => {
  it("pulls a checkpoint image from the registry into the node's storage and restores from it", async () => {
    await core.createNamespacedPod({ namespace: ns, body: counterPod("origin", "node-a") });
    await waitForPod(core, ns, "origin", "ready", isReady);
    await waitForLog(cluster, "node-a", ns, "origin", /count=2 /);
    // The checkpoint as an agent on node-a would make it: its ServiceAccount may create nodes/checkpoint.
    const res = await fetchCheckpoint("origin");
    const archive = cluster.node("node-a").hostPath(res);
    const image = `${registryHost}/ms2m/counter-checkpoint:origin`;
    await pushCheckpointImage(createReadStream(archive), image, "counter", {
      maxBytes: 64 * 1024 * 1024,
      insecureHosts: [registryHost],
    });
    const log = await cluster.node("node-a").containerLog(ns, "origin", "counter");
    const count = Number(/checkpoint count=(\d+)/.exec(log)?.[1]);

    const pod = counterPod("pulled", "node-b");
    pod.spec!.containers[0]!.image = image;
    pod.spec!.containers[0]!.imagePullPolicy = "IfNotPresent";
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await waitForPod(core, ns, "pulled", "ready", isReady);
    const restored = await waitForLog(cluster, "node-b", ns, "pulled", new RegExp(`count=${count + 1} `));
    expect(restored.split("\n")[0]).toBe(`start count=${count} restored=true pod=pulled host=origin`);
    expect((await cluster.node("node-b").status()).images).toContain(image);
  });

  it("reports ErrImagePull, then ImagePullBackOff, for an image the registry does not have", async () => {
    const pod = counterPod("missing", "node-b");
    pod.spec!.containers[0]!.image = `${registryHost}/ms2m/nothing:here`;
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const reasons = new Set<string>();
    await waitFor(
      "ErrImagePull then ImagePullBackOff",
      async () => {
        const p = await core.readNamespacedPod({ name: "missing", namespace: ns });
        const reason = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
        if (reason) reasons.add(reason);
        return reasons.has("ErrImagePull") && reasons.has("ImagePullBackOff") ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    await core.deleteNamespacedPod({ name: "missing", namespace: ns, gracePeriodSeconds: 0 });
  });
});

/** POST /checkpoint on node-a's kubelet with an allowed ServiceAccount token. */
async function fetchCheckpoint(pod: string): Promise<string> {
  const { rbac } = simCluster();
  const name = `${ns}-ckpt`;
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "agent" } } });
  await rbac.createClusterRole({
    body: {
      metadata: { name },
      rules: [{ apiGroups: [""], resources: ["nodes/checkpoint"], verbs: ["create"] }],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
      subjects: [{ kind: "ServiceAccount", name: "agent", namespace: ns }],
    },
  });
  try {
    const token = (
      await core.createNamespacedServiceAccountToken({
        name: "agent",
        namespace: ns,
        body: { spec: { audiences: [] } },
      })
    ).status?.token;
    const res = await kubeletCall(
      cluster.info.caFile,
      cluster.node("node-a").ip,
      `/checkpoint/${ns}/${pod}/counter`,
      {
        method: "POST",
        ...(token ? { token } : {}),
      },
    );
    expect(res.status).toBe(200);
    return (JSON.parse(res.body) as { items: string[] }).items[0]!;
  } finally {
    await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await rbac.deleteClusterRole({ name }).catch(() => undefined);
  }
}
