import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../harness/after-file.ts";
import { readdir } from "node:fs/promises";
import { sleep } from "../../tooling/exec.ts";
import {
  containerId,
  createDeployment,
  createMigration,
  expectNoLoss,
  finalAccounting,
  getMigration,
  livePods,
  queueExists,
  realTestEnv,
  setupFile,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
} from "./env.ts";

// A restore the runtime refuses, on real nodes: node-b's CRIU fails (the criu wrapper's injected
// fault, hack/build-node.sh), so CRI-O cannot restore the checkpoint there. The migration fails
// in Restoring and rolls back: the source workload keeps running as before (same pod, same
// container, still consuming), nothing the migration made is left, no message is lost.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 300_000 });
const env = realTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  setup = await setupFile(env, "real-rb");
});
afterFile(async (failed) => {
  await env.cluster.realNode("node-b").setCriuFault(false);
  await setup?.teardown(failed);
});

it("a restore CRI-O refuses rolls back: source untouched, nothing left behind, 0 lost", async () => {
  const { ns, work } = setup;
  const w = workloadNames(ns, "rb", work);
  await createDeployment(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourcePod = source!.metadata!.name!;
  const sourceUid = source!.metadata!.uid!;
  const sourceId = await containerId(env, ns, sourcePod, "consumer");
  const producer = new TestProducer(env, w, 20);
  await producer.start();
  await sleep(2_000);

  // Only node-b's CRIU fails: the checkpoint on node-a works, the restore on node-b cannot.
  await env.cluster.realNode("node-b").setCriuFault(true);
  await createMigration(env, ns, "rb-to-b", w, { sourcePod, targetNode: "node-b", transferMode: "Direct" });
  const m = await waitForPhase(env, ns, "rb-to-b", ["Failed"], 180_000).catch(async (err: unknown) => {
    // waitForPhase throws on Failed unless asked for it: take the object as it is.
    const got = await getMigration(env, ns, "rb-to-b");
    if (got?.status?.phase === "Failed") return got;
    throw err;
  });
  await env.cluster.realNode("node-b").setCriuFault(false);

  expect(m.status?.failure).toMatchObject({ phase: "Restoring", reason: "RestoreFailed" });
  expect(m.status?.failure?.message).toMatch(/criu|restor/i);
  console.log(`[real] refused restore: ${m.status?.failure?.message}`);
  expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
  // The container really was checkpointed: the failure is the restore's.
  expect(m.status?.containers?.[0]?.checkpointBytes).toBeGreaterThan(1024 * 1024);

  // The source is the same pod and the same container, still running and consuming.
  const pods = await livePods(env, ns, w.name);
  expect(pods.map((p) => p.metadata?.uid)).toEqual([sourceUid]);
  expect(await containerId(env, ns, sourcePod, "consumer")).toBe(sourceId);
  expect(pods[0]?.status?.containerStatuses?.[0]?.restartCount).toBe(0);

  // Nothing left: no target pod, no checkpoint image on node-b, no archive on node-a, no replay queue.
  const b = env.cluster.realNode("node-b");
  // (Completed migrations of other files keep theirs: their pods run from them.)
  const ours = (await b.images())
    .flatMap((i) => i.repoTags)
    .filter((t) => t.includes(`ms2m-checkpoint/${ns}-`));
  expect(ours).toEqual([]);
  expect(await readdir(env.cluster.realNode("node-a").checkpointsDir)).toEqual([]);
  const replayQueue = m.status?.replay?.replayQueue;
  if (replayQueue) expect(await queueExists(replayQueue)).toBe(false);

  await sleep(2_000);
  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
  expectNoLoss(report);
});
