import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../harness/after-file.ts";
import { sleep } from "../../tooling/exec.ts";
import {
  consumerTemplate,
  containerId,
  createMigration,
  expectNoLoss,
  finalAccounting,
  imagesOf,
  jsonLog,
  livePods,
  realTestEnv,
  waitForPodsExactly,
  restoredFromCheckpointAt,
  setupFile,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";

// A pod with two containers on real nodes: the consumer and a stateful sidecar (a counter that
// only lives in its process's memory). Both are checkpointed, both archives transferred side by
// side, both restored by CRI-O; the sidecar's counter goes on from where it was.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 300_000 });
const env = realTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  setup = await setupFile(env, "real-two");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
});

// PID 1 of its container: without a handler SIGTERM would be ignored until the grace period ends.
const TICKER =
  "let n = 0; setInterval(() => console.log(JSON.stringify({ tick: ++n, at: Date.now() })), 100);" +
  "process.on('SIGTERM', () => process.exit(0));";

it("checkpoints and restores both containers; the sidecar's in-memory counter continues", async () => {
  const { ns, work } = setup;
  const w = workloadNames(ns, "two", work);
  const template = consumerTemplate(w, env, "node-a");
  template.spec!.containers.push({
    name: "ticker",
    image: imagesOf(env).workload,
    command: ["node", "-e", TICKER],
  });
  await env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template },
    },
  });
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourcePod = source!.metadata!.name!;
  const producer = new TestProducer(env, w, 20);
  await producer.start();
  await sleep(3_000);
  const migrationStart = Date.now();
  await createMigration(env, ns, "two-to-b", w, { sourcePod, targetNode: "node-b", transferMode: "Direct" });
  const m = await waitForCompletion(env, ns, "two-to-b", 180_000);
  await sleep(1_500);

  expect(m.status?.containers?.map((c) => c.name).sort()).toEqual(["consumer", "ticker"]);
  for (const c of m.status!.containers!) {
    expect(c.transferred).toBe(true);
    expect(c.checkpointBytes).toBeGreaterThan(1024 * 1024);
  }
  const target = m.status!.targetPod!;
  expect((await livePods(env, ns, w.name)).map((p) => p.metadata?.name)).toEqual([target]);
  for (const name of ["consumer", "ticker"]) {
    const id = await containerId(env, ns, target, name);
    expect(await restoredFromCheckpointAt(env, "node-b", id), name).toBeDefined();
  }

  // The ticks the target printed itself (the log before them is the source's, restored with it).
  const ticks = (await jsonLog(env, "node-b", ns, target, "ticker"))
    .filter((l) => typeof l.tick === "number" && Number(l.at) >= migrationStart)
    .map((l) => Number(l.tick));
  expect(ticks.length).toBeGreaterThan(5);
  // At 10 ticks/s for 3 s before the migration: a cold start would count from 1 again.
  expect(ticks[0]).toBeGreaterThanOrEqual(30);
  for (let i = 1; i < ticks.length; i++) expect(ticks[i]).toBe(ticks[i - 1]! + 1);

  await waitForPodsExactly(env, ns, w.name, [target]); // the source has stopped
  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
  expectNoLoss(report);
});
