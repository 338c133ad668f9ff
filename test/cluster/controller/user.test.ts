import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { parse, stringify } from "yaml";
import { controlPlaneBinaries } from "../../../tooling/cluster/binaries.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { mustSucceed, repoPath } from "../../../tooling/stack/manifests.ts";
import {
  checkpointCount,
  consumerTemplate,
  controllerOf,
  controllerTestEnv,
  createStatefulSet,
  finalAccounting,
  livePods,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";

// What a user does and sees: a sample from config/samples applied with kubectl while
// `kubectl get smig -w` runs, and a pod with two containers (the consumer and a stateful
// sidecar), both checkpointed, transferred and restored.
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let registry: { stop(): Promise<void> } | undefined;

beforeAll(async () => {
  registry = await startRegistry(env.hostIp);
  setup = await setupFile(env, "user");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
  await registry?.stop();
});

const PHASES = [
  "Pending",
  "Checkpointing",
  "Transferring",
  "Restoring",
  "Replaying",
  "Finalizing",
  "Completed",
];

it("config/samples/sequential-registry.yaml applied with kubectl; `kubectl get smig -w` shows every phase", async () => {
  const { ns, work } = setup;
  const w = workloadNames(ns, "ledger", work, true);
  await createStatefulSet(env, ns, w, "node-a", 1);
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourcePod = source?.metadata?.name ?? "";
  const producer = new TestProducer(env, w, 20);
  await producer.start();
  await sleep(500);

  // The sample as shipped, pointed at this cluster's pod, registry and broker Secret.
  const sample = parse(await readFile(repoPath("config/samples/sequential-registry.yaml"), "utf8")) as {
    metadata: { name: string };
    spec: Record<string, unknown> & { messageQueueConfig: Record<string, unknown> };
  };
  sample.spec.sourcePod = sourcePod;
  sample.spec.checkpointImageRepository = `${env.registry}/ms2m/checkpoints`;
  sample.spec.messageQueueConfig = {
    ...sample.spec.messageQueueConfig,
    queueName: `${w.queue}.${sourcePod}`,
    exchangeName: w.exchange,
    brokerSecretRef: { name: "broker", key: "url" },
  };
  const name = sample.metadata.name;

  const { kubeBin } = await controlPlaneBinaries();
  const watch = spawn(`${kubeBin}/kubectl`, ["get", "smig", "-n", ns, "-w"], {
    env: { ...process.env, KUBECONFIG: env.cluster.info.kubeconfig },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  watch.stdout.on("data", (d: Buffer) => (out += d.toString()));
  try {
    await sleep(500); // the watch is established before the object exists
    const applied = mustSucceed(
      await env.kubectl(["apply", "-n", ns, "-f", "-"], stringify(sample)),
      "apply",
    );
    expect(applied.trim()).toBe(`statefulmigration.migration.ms2m.io/${name} created`);
    const m = await waitForCompletion(env, ns, name);
    await waitFor("Completed row", async () => (/\sCompleted\s/.test(out) ? true : undefined), {
      timeoutMs: 10_000,
    });
    const lines = out.trim().split("\n");
    expect(lines[0]?.split(/\s+/)).toEqual([
      "NAME",
      "PHASE",
      "STRATEGY",
      "MODE",
      "SOURCE",
      "TARGET",
      "DURATION",
      "AGE",
    ]);
    const rows = lines.slice(1).map((l) => l.split(/\s+/));
    expect(rows.every((r) => r[0] === name)).toBe(true);
    // Every status write is one watch event: each phase appears, in order.
    const seen = rows.map((r) => r[1]).filter((p, i, all) => p && PHASES.includes(p) && p !== all[i - 1]);
    expect(seen).toEqual(PHASES);
    const last = rows.at(-1)!;
    expect(last.slice(1, 6)).toEqual(["Completed", "Sequential", "Registry", sourcePod, "node-b"]);
    expect(last[6]).toBe(m.status?.duration);

    const target = await env.core.readNamespacedPod({ namespace: ns, name: sourcePod });
    expect(target.spec?.nodeName).toBe("node-b");
    expect(controllerOf(target)).toMatchObject({ kind: "StatefulSet", name: w.name });
  } finally {
    watch.kill();
  }
  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "sts", w.name), sourcePod);
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
});

it("a two-container pod: both containers checkpointed and restored with their state, zero lost", async () => {
  const { ns, work } = setup;
  const w = workloadNames(ns, "duo", work);
  const template = consumerTemplate(w, env, "node-a");
  template.spec!.containers.push({
    name: "counter",
    image: "ms2m.test/counter:dev",
    imagePullPolicy: "IfNotPresent",
    env: [{ name: "COUNTER_INTERVAL_MS", value: "20" }],
  });
  await env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template },
    },
  });
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourceName = source?.metadata?.name ?? "";
  const producer = new TestProducer(env, w, 30);
  await producer.start();
  await sleep(1_000);

  const name = `m-${w.name}`;
  const created = mustSucceed(
    await env.kubectl(
      ["apply", "-n", ns, "-f", "-"],
      stringify({
        apiVersion: "migration.ms2m.io/v1alpha1",
        kind: "StatefulMigration",
        metadata: { name },
        spec: {
          sourcePod: sourceName,
          targetNode: "node-b",
          transferMode: "Direct",
          messageQueueConfig: {
            queueName: w.queue,
            exchangeName: w.exchange,
            brokerSecretRef: { name: "broker", key: "url" },
          },
        },
      }),
    ),
    "apply",
  );
  expect(created).toContain("created");
  const m = await waitForCompletion(env, ns, name);
  const containers = m.status?.containers ?? [];
  expect(containers.map((c) => c.name).sort()).toEqual(["consumer", "counter"]);
  for (const c of containers) {
    expect(c.transferred).toBe(true);
    expect(c.checkpointPath).toContain(`-${c.name}-`);
  }
  expect(new Set(containers.map((c) => c.checkpointImage)).size).toBe(2);
  expect(await checkpointCount(env, "node-a", ns, sourceName)).toBe(2);

  const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
  expect(target.spec?.nodeName).toBe("node-b");
  expect(target.spec?.containers.map((c) => c.name)).toEqual(["consumer", "counter"]);
  expect(controllerOf(target)?.kind).toBe("ReplicaSet");
  // The sidecar continues from its checkpointed count instead of starting at 0.
  const log = mustSucceed(
    await env.kubectl(["logs", "-n", ns, target.metadata?.name ?? "", "-c", "counter"]),
    "logs",
  );
  const start = /start count=(\d+) restored=(\w+)/.exec(log);
  expect(start?.[2]).toBe("true");
  expect(Number(start?.[1])).toBeGreaterThan(0);
  const pods = await livePods(env, ns, w.name);
  expect(pods.map((p) => p.metadata?.uid)).toEqual([target.metadata?.uid]);

  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
});
