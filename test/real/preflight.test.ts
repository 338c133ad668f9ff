import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../harness/after-file.ts";
import { sleep } from "../../tooling/exec.ts";
import {
  containerId,
  createDeployment,
  createMigration,
  crioCheckpoints,
  expectNoLoss,
  finalAccounting,
  getMigration,
  livePods,
  realTestEnv,
  setupFile,
  stopper,
  TestProducer,
  waitForConsumers,
  workloadNames,
} from "./env.ts";
import { waitForNodeReady } from "../../tooling/cluster/nodes.ts";

// The preflight against a real runtime: node-c is a real node whose CRI-O runs with
// enable_criu_support = false (as a cluster that never enabled it). A migration to it, and one
// from it, fail in Pending, before anything is frozen: no checkpoint taken, the source untouched,
// and the message says what to enable and where.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 300_000 });
const env = realTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  await env.cluster.startRealNode("node-c", { index: 2, criuSupport: false });
  await waitForNodeReady(env.kc, "node-c", 120_000);
  setup = await setupFile(env, "real-pre"); // waits for the agent on every node, node-c too
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
  await env.cluster.stopNode("node-c");
});

async function failedInPending(ns: string, name: string) {
  for (let i = 0; i < 600; i++) {
    const m = await getMigration(env, ns, name);
    if (m?.status?.phase === "Failed") return m;
    expect(["", "Pending"]).toContain(m?.status?.phase ?? "");
    await sleep(100);
  }
  throw new Error(`${name} did not fail`);
}

it.each([
  { from: "node-a", to: "node-c", reason: "TargetRuntimeCannotRestore", what: "restore" },
  { from: "node-c", to: "node-b", reason: "SourceRuntimeCannotCheckpoint", what: "checkpoint" },
])("$from -> $to fails in Pending ($reason), nothing frozen", async ({ from, to, reason, what }) => {
  const { ns, work } = setup;
  const w = workloadNames(ns, `pre-${from}`, work);
  await createDeployment(env, ns, w, from);
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourcePod = source!.metadata!.name!;
  const sourceId = await containerId(env, ns, sourcePod, "consumer");
  const producer = new TestProducer(env, w, 20);
  await producer.start();
  await sleep(1_000);

  await createMigration(env, ns, `pre-${from}-to-${to}`, w, {
    sourcePod,
    targetNode: to,
    transferMode: "Direct",
  });
  const m = await failedInPending(ns, `pre-${from}-to-${to}`);
  expect(m.status?.failure).toMatchObject({ phase: "Pending", reason });
  const message = m.status?.failure?.message ?? "";
  console.log(`[real] ${reason}: ${message}`);
  expect(message).toContain("node-c (cri-o://1.36.1)");
  expect(message).toContain(`cannot ${what}`);
  expect(message).toMatch(
    /set enable_criu_support = true in \[crio\.runtime\] \(\/etc\/crio\/crio\.conf\).*restart CRI-O/,
  );
  expect(m.status?.conditions?.find((c) => c.type === "RuntimeReady")?.status).toBe("False");

  // Nothing frozen: CRI-O never checkpointed the source, which runs on as before.
  expect(await crioCheckpoints(env, from, sourceId)).toBe(0);
  const pods = await livePods(env, ns, w.name);
  expect(pods.map((p) => p.metadata?.name)).toEqual([sourcePod]);
  expect(await containerId(env, ns, sourcePod, "consumer")).toBe(sourceId);
  await sleep(1_000);
  expectNoLoss(await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name)));
});
