import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { readFile, readdir } from "node:fs/promises";
import { mustSucceed, repoPath } from "../../../tooling/stack/manifests.ts";
import {
  checkpointCount,
  controllerOf,
  controllerTestEnv,
  createDeployment,
  createMigration,
  finalAccounting,
  getMigration,
  livePods,
  setupFile,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
} from "./env.ts";

// CHECKPOINT_MODE=node-proxy: the controller checkpoints through the API server's node proxy
// (POST /api/v1/nodes/{node}/proxy/checkpoint/...), as on nodes where no agent runs. Without the
// optional node-proxy-fallback RBAC it fails clearly and rolls back; with it the migration
// completes; a kill between request and answer cannot be looked up (the kubelet keeps no
// record), so the migration rolls back instead of checkpointing twice, and the archive the
// kubelet writes anyway is removed by the cleanup Job on the source node (archive window).
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let fallbackRbac = "";

beforeAll(async () => {
  // A short checkpoint timeout: the cleanup Job of a lost answer waits that long for the
  // kubelet's checkpoint to end before it looks for the archive.
  setup = await setupFile(env, "nproxy", { CHECKPOINT_MODE: "node-proxy", CHECKPOINT_TIMEOUT_SECONDS: "20" });
  fallbackRbac = await readFile(repoPath("config/components/node-proxy-fallback/role.yaml"), "utf8");
});

afterFile(async (failed) => {
  // Other files check that the controller may NOT use nodes/proxy.
  await env.kubectl(["delete", "--ignore-not-found", "-f", "-"], fallbackRbac);
  await setup?.teardown(failed);
});

async function startWorkload(label: string) {
  const { ns, work } = setup;
  const w = workloadNames(ns, label, work);
  await createDeployment(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const producer = new TestProducer(env, w, 30);
  await producer.start();
  await sleep(500);
  const name = `m-${label}`;
  await createMigration(env, ns, name, w, { sourcePod: source?.metadata?.name ?? "", targetNode: "node-b" });
  return { w, name, producer, source: source! };
}

async function rolledBack(run: Awaited<ReturnType<typeof startWorkload>>) {
  const { ns } = setup;
  const pods = await waitFor("source alone", async () => {
    const live = await livePods(env, ns, run.w.name);
    return live.length === 1 ? live : undefined;
  });
  expect(pods[0]?.metadata?.uid).toBe(run.source.metadata?.uid);
  const report = await finalAccounting(env, ns, run.w, run.producer, stopper(env, ns, "deploy", run.w.name));
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
}

it("without nodes/proxy: fails in Checkpointing naming the missing grant, rolls back, zero lost", async () => {
  const run = await startWorkload("np-denied");
  const m = await waitForPhase(env, setup.ns, run.name, ["Failed", "Completed"], 60_000, 100).catch(
    async () => (await getMigration(env, setup.ns, run.name))!,
  );
  expect(m.status?.phase).toBe("Failed");
  expect(m.status?.failure?.phase).toBe("Checkpointing");
  expect(m.status?.failure?.reason).toBe("CheckpointFailed");
  expect(m.status?.failure?.message).toContain("node-proxy-fallback");
  expect(m.status?.containers?.[0]?.checkpointVia).toBe("NodeProxy");
  expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
  await rolledBack(run);
});

it("with config/components/node-proxy-fallback: completes through the node proxy, zero lost", async () => {
  mustSucceed(await env.kubectl(["apply", "-f", "-"], fallbackRbac), "apply node-proxy-fallback");
  const { ns } = setup;
  const run = await startWorkload("np-ok");
  const m = await waitFor(
    "completed",
    async () => {
      const x = await getMigration(env, ns, run.name);
      // RBAC changes reach the authorizer within a moment; a Forbidden here would fail the run.
      if (x?.status?.phase === "Failed") throw new Error(JSON.stringify(x.status.failure));
      return x?.status?.phase === "Completed" ? x : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 100 },
  );
  expect(m.status?.containers?.[0]?.checkpointVia).toBe("NodeProxy");
  expect(m.status?.containers?.[0]?.checkpointPath).toMatch(/^\/var\/lib\/kubelet\/checkpoints\/checkpoint-/);
  expect(await checkpointCount(env, "node-a", ns, run.source.metadata?.name ?? "")).toBe(1);
  const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
  expect(target.spec?.nodeName).toBe("node-b");
  expect(controllerOf(target)?.kind).toBe("ReplicaSet");
  const report = await finalAccounting(env, ns, run.w, run.producer, stopper(env, ns, "deploy", run.w.name));
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
});

it("SIGKILL between request and answer: outcome unknown, rolled back, never checkpointed twice", async () => {
  const { ns, controller } = setup;
  await env.cluster.node("node-a").setLatencies({ checkpointMs: 4_000 });
  try {
    const run = await startWorkload("np-inflight");
    await waitFor(
      "checkpoint intent recorded",
      async () => {
        const c = (await getMigration(env, ns, run.name))?.status?.containers?.[0];
        return c?.checkpointRequestedAt && !c.checkpointPath ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    const sourceName = run.source.metadata?.name ?? "";
    // Killed once the request has reached the kubelet (through the API server's node proxy),
    // while the kubelet is still checkpointing: the controller never gets the answer.
    await waitFor(
      "checkpoint request at the kubelet",
      async () =>
        (await checkpointCount(env, "node-a", ns, sourceName, "checkpoint started")) === 1 ? true : undefined,
      { timeoutMs: 10_000, intervalMs: 10 },
    );
    await controller.kill();
    expect(await checkpointCount(env, "node-a", ns, sourceName)).toBe(0);
    await sleep(300);
    await controller.start();
    const m = await waitForPhase(env, ns, run.name, ["Failed", "Completed"], 60_000, 100).catch(
      async () => (await getMigration(env, ns, run.name))!,
    );
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure?.reason).toBe("CheckpointOutcomeUnknown");
    expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
    await sleep(4_500); // the kubelet finishes the request the controller no longer waits for
    expect(await checkpointCount(env, "node-a", ns, sourceName)).toBe(1);
    // Its archive: named by no answer, so the cleanup Job pinned to node-a (where an agent runs,
    // which has no record of it) looks for it by pod, container and time once it has settled.
    const archives = async () =>
      (
        await readdir(env.cluster.node("node-a").hostPath("/var/lib/kubelet/checkpoints")).catch(() => [])
      ).filter((n) => n.startsWith(`checkpoint-${sourceName}_${ns}-`));
    expect(await archives()).toHaveLength(1);
    const events = await env.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${run.name}`,
    });
    expect(
      events.items
        .filter((e) => e.reason === "CheckpointCleanupJob")
        .map((e) => /^Job (ms2m-cleanup-\S+) deletes any checkpoint archive of /.exec(e.message ?? "")?.[1]),
    ).toEqual([expect.stringMatching(/^ms2m-cleanup-[a-z0-9]{12}-node-a$/)]);
    expect(events.items.filter((e) => e.reason === "CheckpointArtifactKept")).toEqual([]);
    await waitFor(
      "archive removed by the cleanup Job",
      async () => ((await archives()).length === 0 ? true : undefined),
      {
        timeoutMs: 75_000,
        intervalMs: 250,
      },
    );
    await rolledBack(run);
  } finally {
    await env.cluster.node("node-a").setLatencies({ checkpointMs: 0 });
  }
});
