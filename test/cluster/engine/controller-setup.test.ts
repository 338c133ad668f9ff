import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { createRegistry } from "../../../src/common/metrics.ts";
import type { Controller } from "../../../src/engine/controller.ts";
import type { Reconciler } from "../../../src/engine/reconciler.ts";
import { createControllerMetrics } from "../../../src/controller/metrics.ts";
import { setupStatefulMigrationController } from "../../../src/controller/setup.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import {
  GROUP,
  PLURAL,
  VERSION,
  controllerKubeConfig,
  createNamespace,
  engineEnv,
  installApi,
  memoryLogger,
  randomSuffix,
} from "./env.ts";

// The StatefulMigration controller's watches (src/controller/setup.ts on the generic engine) on the real API server as the controller's ServiceAccount, with a
// reconciler that only counts: which changes enqueue which migration, and the periodic resync.
const env = engineEnv();
const NS = `engine-mgr-${randomSuffix()}`;
const counts = new Map<string, number>();
const count = (name: string) => counts.get(`${NS}/${name}`) ?? 0;
let manager: Controller;

async function createSm(name: string, sourcePod: string): Promise<void> {
  await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: NS,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "StatefulMigration",
      metadata: { name },
      spec: { sourcePod, transferMode: "Direct" },
    },
  });
}

async function createPod(name: string): Promise<void> {
  await env.core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { name }, spec: { containers: [{ name: "c", image: "x" }], nodeName: "nowhere" } },
  });
}

async function labelPod(name: string, value: string): Promise<void> {
  await env.core.patchNamespacedPod(
    { namespace: NS, name, body: { metadata: { labels: { v: value } } } },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
}

beforeAll(async () => {
  await installApi(env);
  await createNamespace(env, NS);
  const kc = await controllerKubeConfig(env);
  const reconciler: Reconciler = {
    reconcile: async ({ namespace: ns, name }) => {
      counts.set(`${ns}/${name}`, (counts.get(`${ns}/${name}`) ?? 0) + 1);
      return {};
    },
  };
  manager = setupStatefulMigrationController({
    kc,
    reconciler,
    log: memoryLogger().log,
    metrics: createControllerMetrics(createRegistry()),
    workers: 2,
    resyncMs: 60_000,
  });
  expect(manager.synced).toBe(false);
  await manager.startInformers();
  expect(manager.synced).toBe(true);
  manager.startWorkers();
});

afterAll(async () => {
  await manager?.stop();
  await env.core.deleteNamespace({ name: NS }).catch(() => undefined);
});

describe("the StatefulMigration controller's watches on a real API server", () => {
  it("reconciles a new migration, and again when its source pod changes, not for other pods", async () => {
    await createSm("m1", "src-1");
    await waitFor("m1 reconciled", async () => (count("m1") >= 1 ? true : undefined), { timeoutMs: 10_000 });
    await sleep(300);
    const base = count("m1");

    await createPod("other");
    await labelPod("other", "1");
    await sleep(800);
    expect(count("m1")).toBe(base);

    const t0 = Date.now();
    await createPod("src-1");
    await waitFor(
      "m1 reconciled on the pod's creation",
      async () => (count("m1") > base ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 10,
      },
    );
    console.log(`[engine] pod event to reconcile: ${Date.now() - t0} ms`);
    const afterCreate = count("m1");
    await labelPod("src-1", "2");
    await waitFor(
      "m1 reconciled on the pod's update",
      async () => (count("m1") > afterCreate ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 10,
      },
    );
  });

  it("a periodic resync re-enqueues every migration without any change", async () => {
    await createSm("quiet", "src-quiet");
    await waitFor("quiet reconciled", async () => (count("quiet") >= 1 ? true : undefined), {
      timeoutMs: 10_000,
    });
    const resynced = new Map<string, number>();
    const second = setupStatefulMigrationController({
      kc: await controllerKubeConfig(env),
      reconciler: {
        reconcile: async ({ namespace: ns, name }) => {
          resynced.set(`${ns}/${name}`, (resynced.get(`${ns}/${name}`) ?? 0) + 1);
          return {};
        },
      },
      log: memoryLogger().log,
      metrics: createControllerMetrics(createRegistry()),
      workers: 1,
      resyncMs: 700,
    });
    try {
      await second.startInformers();
      second.startWorkers();
      await sleep(300);
      const initial = resynced.get(`${NS}/quiet`) ?? 0;
      expect(initial).toBe(1); // the informer's add
      await sleep(2000);
      expect(resynced.get(`${NS}/quiet`)).toBeGreaterThanOrEqual(initial + 2);
    } finally {
      await second.stop();
    }
  });

  it("a finished migration is not woken by its pods", async () => {
    await createSm("done", "src-done");
    await waitFor("done reconciled", async () => (count("done") >= 1 ? true : undefined), {
      timeoutMs: 10_000,
    });
    await env.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: NS,
        name: "done",
        body: { status: { phase: "Completed" } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await sleep(800);
    const base = count("done");
    await createPod("src-done");
    await sleep(1000);
    expect(count("done")).toBe(base);
  });
});
