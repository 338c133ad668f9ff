import { copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import { createReadStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as k8s from "@kubernetes/client-node";
import * as tar from "tar-stream";
import { Agent, request } from "undici";
import { blobPath, describeCheckpointImage, initLayout, writeLayout } from "../../../src/checkpoint/image.ts";
import { loadLayoutIntoStorage } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import {
  counterPod,
  createNamespace,
  isReady,
  kubeletCall,
  saToken,
  simCluster,
  waitForLog,
  waitForPod,
} from "./helpers.ts";

// The kubelet checkpoint API of simulated nodes (through the API server's node proxy and
// directly, with delegated authentication/authorization), the CRI-O archive it writes, and
// restore from a checkpoint image on another node.
const { cluster, kc, core, rbac } = simCluster();
const caFile = cluster.info.caFile;
const nodeA = cluster.node("node-a");
const nodeB = cluster.node("node-b");
let ns: string;
let work: string;

/** A call through the API server as the admin (client certificate from the kubeconfig). */
async function viaApiServer(method: "GET" | "POST", path: string): Promise<{ status: number; body: string }> {
  const user = kc.getCurrentUser();
  const dispatcher = new Agent({
    connect: {
      ca: readFileSync(caFile),
      cert: readFileSync(user?.certFile ?? ""),
      key: readFileSync(user?.keyFile ?? ""),
    },
  });
  try {
    const res = await request(`${cluster.info.server}${path}`, { method, dispatcher });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

async function tarEntries(path: string): Promise<Map<string, { mode: number; body: Buffer }>> {
  const entries = new Map<string, { mode: number; body: Buffer }>();
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      entries.set(entry.header.name, { mode: entry.header.mode ?? 0, body: Buffer.concat(chunks) });
    }
  })();
  await Promise.all([pipeline(createReadStream(path), extract), reading]);
  return entries;
}

const checkpointPath = (pod: string, container = "counter") => `/checkpoint/${ns}/${pod}/${container}`;

beforeAll(async () => {
  ns = await createNamespace(core, "sim-ckpt");
  work = await mkdtemp(join(tmpdir(), "ms2m-sim-ckpt-"));
  await core.createNamespacedPod({ namespace: ns, body: counterPod("source", "node-a") });
  await waitForPod(core, ns, "source", "ready", isReady);
  await waitForLog(cluster, "node-a", ns, "source", /count=3 /);

  // One ServiceAccount may create nodes/checkpoint, the other may not.
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "checkpointer" } } });
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "bystander" } } });
  await rbac.createClusterRole({
    body: {
      metadata: { name: `${ns}-checkpoint` },
      rules: [{ apiGroups: [""], resources: ["nodes/checkpoint"], verbs: ["create"] }],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `${ns}-checkpoint` },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `${ns}-checkpoint` },
      subjects: [{ kind: "ServiceAccount", name: "checkpointer", namespace: ns }],
    },
  });
});

afterAll(async () => {
  await rbac.deleteClusterRoleBinding({ name: `${ns}-checkpoint` }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: `${ns}-checkpoint` }).catch(() => undefined);
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

describe("kubelet checkpoint API", () => {
  it("checkpoints through the API server's node proxy: 200 with exactly one archive path", async () => {
    const res = await viaApiServer(
      "POST",
      `/api/v1/nodes/node-a/proxy${checkpointPath("source")}?timeout=30`,
    );
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body) as { items: string[] };
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatch(
      new RegExp(
        `^/var/lib/kubelet/checkpoints/checkpoint-source_${ns}-counter-\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\.tar$`,
      ),
    );
    const file = nodeA.hostPath(body.items[0]!);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("authorizes direct calls with TokenReview + SubjectAccessReview on nodes/checkpoint", async () => {
    const allowed = await saToken(core, ns, "checkpointer");
    const denied = await saToken(core, ns, "bystander");
    const ok = await kubeletCall(caFile, nodeA.ip, checkpointPath("source"), {
      method: "POST",
      token: allowed,
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).items).toHaveLength(1);
    const forbidden = await kubeletCall(caFile, nodeA.ip, checkpointPath("source"), {
      method: "POST",
      token: denied,
    });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toContain("subresource(s)=[checkpoint]");
    const anonymous = await kubeletCall(caFile, nodeA.ip, checkpointPath("source"), { method: "POST" });
    expect(anonymous.status).toBe(401);
    const badToken = await kubeletCall(caFile, nodeA.ip, checkpointPath("source"), {
      method: "POST",
      token: "nope",
    });
    expect(badToken.status).toBe(401);
    // nodes/checkpoint alone does not open the rest of the kubelet API.
    expect((await kubeletCall(caFile, nodeA.ip, "/pods", { token: allowed })).status).toBe(403);
  });

  it("answers 404 for an unknown pod or container and for an unparsable timeout", async () => {
    expect(
      (await viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("nothere")}`)).status,
    ).toBe(404);
    expect(
      (await viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("source", "nope")}`)).status,
    ).toBe(404);
    expect(
      (await viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("source")}?timeout=soon`))
        .status,
    ).toBe(404);
    // The pod runs on node-a, not node-b.
    expect((await viaApiServer("POST", `/api/v1/nodes/node-b/proxy${checkpointPath("source")}`)).status).toBe(
      404,
    );
  });

  it("serializes concurrent checkpoints of one container: every caller gets an archive", async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("source")}`)),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    for (const r of results) {
      const path = (JSON.parse(r.body) as { items: string[] }).items[0]!;
      expect((await stat(nodeA.hostPath(path))).isFile()).toBe(true);
    }
  });

  it("answers 500 when the runtime cannot dump the process", async () => {
    await nodeA.setImages({
      "ms2m.test/mute:dev": { command: [process.execPath, "-e", "setInterval(() => {}, 1000)"] },
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "mute" },
        spec: { nodeName: "node-a", containers: [{ name: "counter", image: "ms2m.test/mute:dev" }] },
      },
    });
    await waitForPod(core, ns, "mute", "ready", isReady);
    const res = await viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("mute")}`);
    expect(res.status).toBe(500);
    expect(res.body).toContain(`checkpointing of ${ns}/mute/counter failed`);
    await core.deleteNamespacedPod({ name: "mute", namespace: ns, gracePeriodSeconds: 0 });
  });

  it("serves /pods and /healthz through the proxy", async () => {
    const pods = await viaApiServer("GET", "/api/v1/nodes/node-a/proxy/pods");
    expect(pods.status).toBe(200);
    const list = JSON.parse(pods.body) as k8s.V1PodList;
    expect(list.items.map((p) => p.metadata?.name)).toContain("source");
    expect((await viaApiServer("GET", "/api/v1/nodes/node-a/proxy/healthz")).body).toBe("ok");
  });
});

describe("checkpoint archive and restore", () => {
  let archive: string;
  let checkpointedCount: number;

  beforeAll(async () => {
    const res = await viaApiServer("POST", `/api/v1/nodes/node-a/proxy${checkpointPath("source")}`);
    expect(res.status).toBe(200);
    archive = nodeA.hostPath((JSON.parse(res.body) as { items: string[] }).items[0]!);
    const log = await nodeA.containerLog(ns, "source", "counter");
    checkpointedCount = Number(/checkpoint count=(\d+)\n(?![\s\S]*checkpoint count=)/.exec(log)?.[1]);
    expect(checkpointedCount).toBeGreaterThan(0);
  });

  it("has the CRI-O layout, with the process state under checkpoint/", async () => {
    const entries = await tarEntries(archive);
    for (const name of [
      "checkpoint/ms2m-state.bin",
      "config.dump",
      "spec.dump",
      "bind.mounts",
      "rootfs-diff.tar",
      "deleted.files",
      "stats-dump",
      "dump.log",
    ]) {
      expect(entries.has(name), name).toBe(true);
    }
    expect(JSON.parse(entries.get("checkpoint/ms2m-state.bin")!.body.toString())).toEqual({
      count: checkpointedCount,
    });
    const spec = JSON.parse(entries.get("spec.dump")!.body.toString()) as {
      mounts: { destination: string; type: string }[];
      hostname: string;
      annotations: Record<string, string>;
    };
    expect(spec.mounts).toContainEqual(
      expect.objectContaining({ destination: "/etc/podinfo", type: "bind" }),
    );
    expect(spec.hostname).toBe("source");
    expect(spec.annotations["io.kubernetes.pod.name"]).toBe("source");
    const config = JSON.parse(entries.get("config.dump")!.body.toString()) as { rootfsImageName: string };
    expect(config.rootfsImageName).toBe("ms2m.test/counter:dev");
    expect(entries.get("config.dump")!.mode).toBe(0o600);
  });

  it("restores on the other node from a checkpoint image loaded with skopeo (imagePullPolicy: Never)", async () => {
    // Build the OCI checkpoint image with the project's library and load it into node-b's storage.
    const layout = join(work, "layout");
    const digest = await digestFile(archive);
    const image = describeCheckpointImage(digest, "counter");
    await initLayout(layout);
    await copyFile(archive, blobPath(layout, digest.digest));
    await writeLayout(layout, image, "v1", "counter");
    await loadLayoutIntoStorage(layout, "v1", nodeB.storage, "localhost/counter-checkpoint:v1");

    const pod = counterPod("restored", "node-b");
    pod.spec!.containers[0]!.image = "localhost/counter-checkpoint:v1";
    pod.spec!.containers[0]!.imagePullPolicy = "Never";
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await waitForPod(core, ns, "restored", "ready", isReady);
    const log = await waitForLog(
      cluster,
      "node-b",
      ns,
      "restored",
      new RegExp(`count=${checkpointedCount + 2} `),
    );
    // The counter continues from the checkpointed value; the hostname is the source pod's
    // (CRIU restores the UTS namespace), the Downward API file is the new pod's.
    expect(log.split("\n")[0]).toBe(
      `start count=${checkpointedCount} restored=true pod=restored host=source`,
    );
    const status = (await core.readNamespacedPod({ name: "restored", namespace: ns })).status;
    expect(status?.containerStatuses?.[0]?.imageID).toMatch(/^sha256:[a-f0-9]{64}$/);
    // The source keeps running after the checkpoint, as under CRIU.
    expect(isReady(await core.readNamespacedPod({ name: "source", namespace: ns }))).toBe(true);
  });

  it("checkpoints a restored container and restores it again on the first node (a second hop)", async () => {
    const res = await viaApiServer("POST", `/api/v1/nodes/node-b/proxy${checkpointPath("restored")}`);
    expect(res.status).toBe(200);
    const second = nodeB.hostPath((JSON.parse(res.body) as { items: string[] }).items[0]!);
    const config = (await tarEntries(second)).get("config.dump")!;
    // The restored container's image is the original base image, as under CRI-O.
    expect(JSON.parse(config.body.toString())).toMatchObject({
      rootfsImageName: "ms2m.test/counter:dev",
      restored: true,
    });
    const log = await nodeB.containerLog(ns, "restored", "counter");
    const count = Number(/checkpoint count=(\d+)\n(?![\s\S]*checkpoint count=)/.exec(log)?.[1]);

    const layout = join(work, "layout-2");
    const digest = await digestFile(second);
    await initLayout(layout);
    await copyFile(second, blobPath(layout, digest.digest));
    await writeLayout(layout, describeCheckpointImage(digest, "counter"), "v2", "counter");
    await loadLayoutIntoStorage(layout, "v2", nodeA.storage, "localhost/counter-checkpoint:v2");
    const pod = counterPod("hop2", "node-a");
    pod.spec!.containers[0]!.image = "localhost/counter-checkpoint:v2";
    pod.spec!.containers[0]!.imagePullPolicy = "Never";
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await waitForPod(core, ns, "hop2", "ready", isReady);
    const hop = await waitForLog(cluster, "node-a", ns, "hop2", new RegExp(`count=${count + 1} `));
    expect(hop.split("\n")[0]).toBe(`start count=${count} restored=true pod=hop2 host=source`);
  });

  it("fails the restore as CRI-O does when a bind mount of the checkpoint is missing", async () => {
    const pod = counterPod("no-mounts", "node-b");
    pod.spec!.containers[0]!.image = "localhost/counter-checkpoint:v1";
    pod.spec!.containers[0]!.imagePullPolicy = "Never";
    pod.spec!.containers[0]!.volumeMounts = [];
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const failed = await waitForPod(
      core,
      ns,
      "no-mounts",
      "CreateContainerError",
      (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "CreateContainerError",
    );
    expect(failed.status?.containerStatuses?.[0]?.state?.waiting?.message).toContain("/etc/podinfo");
    await core.deleteNamespacedPod({ name: "no-mounts", namespace: ns, gracePeriodSeconds: 0 });
  });

  it("reports ErrImageNeverPull for a missing image with imagePullPolicy: Never", async () => {
    const pod = counterPod("never", "node-a");
    pod.spec!.containers[0]!.image = "localhost/counter-checkpoint:v1"; // only loaded on node-b
    pod.spec!.containers[0]!.imagePullPolicy = "Never";
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const waiting = await waitForPod(
      core,
      ns,
      "never",
      "ErrImageNeverPull",
      (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImageNeverPull",
    );
    expect(waiting.status?.phase).toBe("Pending");
    expect(waiting.status?.containerStatuses?.[0]?.state?.waiting?.message).toContain("pull policy of Never");
    await core.deleteNamespacedPod({ name: "never", namespace: ns, gracePeriodSeconds: 0 });
  });
});
