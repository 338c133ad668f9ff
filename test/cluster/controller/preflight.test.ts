import { readFile, readdir } from "node:fs/promises";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import type * as k8s from "@kubernetes/client-node";
import { listStoredImages } from "../../../src/checkpoint/skopeo.ts";
import { AGENT_SERVER_NAME, AgentClient } from "../../../src/transfer/index.ts";
import { replayQueueName } from "../../../src/protocol/replay.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { COUNTER_IMAGE } from "../../../tooling/cluster/nodes.ts";
import {
  SYSTEM_NS,
  checkpointCount,
  controllerTestEnv,
  createDeployment,
  createMigration,
  deleteMigration,
  finalAccounting,
  getMigration,
  isReady,
  migrationGone,
  queueExists,
  serviceAccountToken,
  setupFile,
  simulatedImages,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
} from "./env.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";

// The runtime preflight on the real control plane: node-c is a simulated node whose CRI-O has
// `enable_criu_support = false` in /etc/crio/crio.conf.d/10-crio.conf (its agent reads it through
// the DaemonSet's read-only hostPath mount). A migration to it, or from it, fails in Pending with
// the setting to change, before anything is frozen: no checkpoint, no replay queue, no target pod,
// the source consuming throughout (zero lost, zero applied twice).
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
const OFF = "node-c";
const DROP_IN = "/etc/crio/crio.conf.d/10-crio.conf";
let setup: Awaited<ReturnType<typeof setupFile>>;
let ns: string;
let agents: AgentClient;
let ca: Buffer;

beforeAll(async () => {
  await env.cluster.startNode(OFF, {
    runtime: { criuSupport: false },
    images: simulatedImages(),
  });
  // ms2m deployed after node-c is up: its agent is Ready before the controller starts.
  setup = await setupFile(env, "preflight");
  ns = setup.ns;
  ca = await readFile(setup.controller.caFile);
  agents = await agentClientAs("ms2m-controller");
});

afterFile(async (failed) => {
  await agents?.close();
  await setup?.teardown(failed);
  await env.cluster.stopNode(OFF).catch(() => undefined);
});

/** An agent client presenting a ServiceAccount's token (`audiences`: ms2m-agent unless given). */
async function agentClientAs(sa: string, audiences = ["ms2m-agent"]): Promise<AgentClient> {
  const token = await serviceAccountToken(env.kc, SYSTEM_NS, sa, audiences);
  return new AgentClient({ ca, servername: AGENT_SERVER_NAME, token: () => token });
}

const agentUrl = (node: string) => `https://${env.cluster.node(node).ip}:9443`;

async function failed(name: string): Promise<StatefulMigration> {
  return waitFor(
    `${name} Failed`,
    async () => {
      const m = await getMigration(env, ns, name);
      if (m?.status?.phase === "Completed") throw new Error(`${name} completed`);
      return m?.status?.phase === "Failed" ? m : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

async function migrationEvents(name: string): Promise<string[]> {
  const events = await env.core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return events.items.map((e) => `${e.type} ${e.reason}: ${e.message}`);
}

/** Files the kubelet wrote for a pod in a node's checkpoints folder. */
async function archivesOf(node: string, pod: string): Promise<string[]> {
  const names = await readdir(env.cluster.node(node).hostPath("/var/lib/kubelet/checkpoints")).catch(
    () => [],
  );
  return names.filter((n) => n.includes(pod));
}

/**
 * Migrates a Deployment's consumer from `from` to `to` under load and expects the preflight to
 * refuse it: Failed in Pending with `reason` and `message`, nothing frozen, nothing left behind.
 */
async function refused(label: string, from: string, to: string, reason: string, message: string) {
  const w = workloadNames(ns, label, setup.work);
  await createDeployment(env, ns, w, from);
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourceName = source?.metadata?.name ?? "";
  const producer = new TestProducer(env, w, 40);
  await producer.start();
  await sleep(1_000);

  const name = `m-${label}`;
  const created = await createMigration(env, ns, name, w, {
    sourcePod: sourceName,
    targetNode: to,
    transferMode: "Direct",
  });
  const m = await failed(name);
  expect(m.status?.failure).toEqual({ phase: "Pending", reason, message });
  expect(m.status?.phaseTimings?.map((t) => t.phase)).toEqual(["Pending"]);
  expect(m.status?.conditions?.find((c) => c.type === "RuntimeReady")).toMatchObject({
    status: "False",
    reason,
    message,
  });
  expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
  expect(await migrationEvents(name)).toContain(`Warning ${reason}: Pending: ${message}`);

  // Nothing frozen: the kubelet was never asked, no replay queue, no target pod, no archive.
  expect(await checkpointCount(env, from, ns, sourceName, "checkpoint started")).toBe(0);
  expect(await archivesOf(from, sourceName)).toEqual([]);
  expect(await queueExists(replayQueueName(created.metadata.uid ?? ""))).toBe(false);
  const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items;
  expect(pods.map((p) => p.metadata?.name)).toEqual([sourceName]);
  const after = pods[0]!;
  expect(after.metadata?.uid).toBe(source?.metadata?.uid);
  expect(after.metadata?.labels).toEqual(source?.metadata?.labels);
  expect(after.metadata?.annotations ?? {}).toEqual(source?.metadata?.annotations ?? {});
  expect(after.metadata?.ownerReferences).toEqual(source?.metadata?.ownerReferences);
  expect(isReady(after)).toBe(true);
  expect(after.status?.containerStatuses?.[0]?.restartCount).toBe(0);
  expect((await listStoredImages(env.cluster.node(to).storage)).filter((i) => i.includes("ms2m"))).toEqual(
    [],
  );

  await deleteMigration(env, ns, name);
  await migrationGone(env, ns, name);
  // Still consuming throughout: every confirmed message applied once, by the source alone.
  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.published).toBeGreaterThan(40);
}

describe("runtime preflight", () => {
  it("a migration to a node whose CRI-O has enable_criu_support = false fails in Pending", async () => {
    await refused(
      "to-off",
      "node-a",
      OFF,
      "TargetRuntimeCannotRestore",
      `target node ${OFF} (cri-o://1.36.1) cannot restore checkpoints: enable_criu_support = false in ` +
        `[crio.runtime] (${DROP_IN}). To fix it, set enable_criu_support = true in [crio.runtime] ` +
        `(${DROP_IN}), then restart CRI-O`,
    );
  });

  it("a migration from that node fails in Pending too", async () => {
    await refused(
      "from-off",
      OFF,
      "node-a",
      "SourceRuntimeCannotCheckpoint",
      `source node ${OFF} (cri-o://1.36.1) cannot checkpoint containers: enable_criu_support = false in ` +
        `[crio.runtime] (${DROP_IN}). To fix it, set enable_criu_support = true in [crio.runtime] ` +
        `(${DROP_IN}), then restart CRI-O`,
    );
  });

  it("between nodes whose CRI-O can, RuntimeReady=True and on to Checkpointing", async () => {
    const w = workloadNames(ns, "can", setup.work);
    await createDeployment(env, ns, w, "node-a");
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    await createMigration(env, ns, "m-can", w, {
      sourcePod: source?.metadata?.name ?? "",
      targetNode: "node-b",
    });
    const m = await waitForPhase(env, ns, "m-can", [
      "Checkpointing",
      "Transferring",
      "Restoring",
      "Replaying",
      "Finalizing",
      "Completed",
    ]);
    // cri-o://1.36.1 has no [crio.checkpoint_restore]: enable_criu_support = true decides both.
    expect(m.status?.conditions?.find((c) => c.type === "RuntimeReady")).toMatchObject({
      status: "True",
      reason: "CheckpointRestoreEnabled",
      message:
        `source node node-a (cri-o://1.36.1) can checkpoint containers: enable_criu_support = true in [crio.runtime] (${DROP_IN}); ` +
        `target node node-b (cri-o://1.36.1) can restore checkpoints: enable_criu_support = true in [crio.runtime] (${DROP_IN}); ` +
        "cri-o://1.36.1 has no [crio.checkpoint_restore]: enable_criu_support alone decides",
    });
    expect((await migrationEvents("m-can")).filter((e) => e.includes("RuntimeCheckSkipped"))).toEqual([]);
    await deleteMigration(env, ns, "m-can");
    await migrationGone(env, ns, "m-can");
    await stopper(env, ns, "deploy", w.name)();
  });

  it("GET /v1/runtime: what each node's agent reads, for the controller only (real RBAC from config/)", async () => {
    expect(await agents.runtime(agentUrl(OFF), "cri-o")).toEqual({
      runtime: "cri-o",
      checkpoint: false,
      restore: false,
      source: DROP_IN,
      detail: expect.any(String),
      settings: { enable_criu_support: { value: false, file: DROP_IN, table: "[crio.runtime]" } },
    });
    // The files alone leave restore open on node-a (it depends on the version, which only the
    // controller reads from the Node): checkpoint on, restore undecided, autodetected as CRI-O.
    expect(await agents.runtime(agentUrl("node-a"))).toMatchObject({
      runtime: "cri-o",
      checkpoint: true,
      settings: { enable_criu_support: { value: true, file: DROP_IN } },
    });
    // Tokens of ServiceAccounts without `get` on agents/runtime are refused by the agent's SAR.
    for (const sa of ["ms2m-agent", "ms2m-transfer"]) {
      const other = await agentClientAs(sa);
      await expect(other.runtime(agentUrl("node-a"))).rejects.toMatchObject({
        reason: "Forbidden",
        message: `system:serviceaccount:${SYSTEM_NS}:${sa} may not get agents/runtime (migration.ms2m.io) on node node-a`,
      });
      await other.close();
    }
    // An API-server token (not of the ms2m-agent audience) is not accepted at all.
    const apiToken = await agentClientAs("ms2m-controller", []);
    await expect(apiToken.runtime(agentUrl("node-a"))).rejects.toMatchObject({ reason: "Unauthorized" });
    await apiToken.close();
  });

  it("the simulated CRI-O honours it: the kubelet refuses checkpoints, a checkpoint image is not restored", async () => {
    // A checkpoint requested from node-c's kubelet directly (API server node proxy, as admin).
    const w = workloadNames(ns, "kubelet-off", setup.work);
    await createDeployment(env, ns, w, OFF);
    const [pod] = await waitForConsumers(env, ns, w.name, 1);
    const podName = pod?.metadata?.name ?? "";
    const err = await env.core
      .connectPostNodeProxyWithPath({ name: OFF, path: `checkpoint/${ns}/${podName}/consumer` })
      .then(
        () => undefined,
        (e: unknown) => e as k8s.ApiException<string>,
      );
    expect(err?.code).toBe(500);
    expect(String(err?.body)).toContain(
      `checkpointing of ${ns}/${podName}/consumer failed (rpc error: code = Unknown desc = checkpoint/restore support not available)`,
    );
    expect(await checkpointCount(env, OFF, ns, podName, "checkpoint started")).toBe(0);
    await stopper(env, ns, "deploy", w.name)();

    // A real checkpoint image (node-a's kubelet, node-a's agent streaming it into node-c's store)
    // used by a pod on node-c: CRI-O without CRIU support treats it as an ordinary image, which
    // has no command.
    const counter = "counter-src";
    await env.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: counter },
        spec: {
          nodeName: "node-a",
          containers: [{ name: "counter", image: COUNTER_IMAGE, imagePullPolicy: "IfNotPresent" }],
        },
      },
    });
    // Ready once started; its checkpoint socket listens by its first tick.
    await waitFor(
      "counter counting",
      async () =>
        /count=1 /.test(await env.cluster.node("node-a").containerLog(ns, counter, "counter"))
          ? true
          : undefined,
      { timeoutMs: 30_000 },
    );
    const ck = await agents.checkpoint(agentUrl("node-a"), {
      namespace: ns,
      pod: counter,
      container: "counter",
    });
    const image = "localhost/ms2m-preflight/counter:off";
    await agents.send(agentUrl("node-a"), {
      migration: "preflight-sim",
      namespace: ns,
      pod: counter,
      container: "counter",
      archive: ck.archive,
      destination: { type: "agent", url: agentUrl(OFF), image },
    });
    expect(await listStoredImages(env.cluster.node(OFF).storage)).toContain(image);
    await env.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "counter-restore" },
        spec: { nodeName: OFF, containers: [{ name: "counter", image, imagePullPolicy: "Never" }] },
      },
    });
    const waiting = await waitFor(
      "CreateContainerError",
      async () => {
        const p = await env.core.readNamespacedPod({ namespace: ns, name: "counter-restore" });
        const state = p.status?.containerStatuses?.[0]?.state?.waiting;
        return state?.reason === "CreateContainerError" ? state : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(waiting.message).toBe("no command specified");
    for (const name of ["counter-restore", counter]) {
      await env.core.deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 0 });
    }
    await agents.releaseCheckpoints(agentUrl(OFF), "preflight-sim");
  });
});
