import type * as k8s from "@kubernetes/client-node";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { waitForNodeReady } from "../../../tooling/cluster/nodes.ts";
import {
  consumerTemplate,
  controllerTestEnv,
  createMigration,
  createPolicy,
  evictionMigrations,
  finalAccounting,
  getMigration,
  livePods,
  setupFile,
  simulatedImages,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
  type Workload,
} from "../controller/env.ts";
import { mustSucceed } from "../../../tooling/stack/manifests.ts";

// Live migration on a plain `kubectl drain`: the real kubectl evicts every pod of node-a; the
// controller's webhook answers evictions of pods a MigrationPolicy selects with "retry" while it
// migrates them live (target chosen automatically), and the drain completes once they have moved.
// A third node (node-c) gives the drain somewhere to go other than back.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  await env.cluster.startNode("node-c", { index: 2, images: simulatedImages() });
  await waitForNodeReady(env.kc, "node-c");
  setup = await setupFile(env, "drain");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
  for (const n of ["node-a", "node-b"]) await env.kubectl(["uncordon", n]);
  await env.cluster.stopNode("node-c").catch(() => undefined);
});

const kubectl = async (...args: string[]) =>
  mustSucceed(await env.kubectl(args), `kubectl ${args.join(" ")}`);

/** Creates workloads whose pods the scheduler puts on node-a (every other node cordoned meanwhile). */
async function onNodeA(ns: string, make: () => Promise<void>, apps: string[]): Promise<void> {
  const nodes = await env.core.listNode();
  const others = nodes.items
    .filter((n) => n.metadata?.name !== "node-a" && !n.spec?.unschedulable)
    .map((n) => n.metadata!.name!);
  for (const n of others) await kubectl("cordon", n);
  try {
    await make();
    for (const app of apps) {
      const [p] = await waitForConsumers(env, ns, app, 1);
      expect(p?.spec?.nodeName).toBe("node-a");
    }
  } finally {
    for (const n of others) await kubectl("uncordon", n);
  }
}

/** The reference consumer without a node pinned: the scheduler places it (and its replacements). */
function template(w: Workload, extra: Partial<k8s.V1PodSpec> = {}): k8s.V1PodTemplateSpec {
  const t = consumerTemplate(w, env);
  Object.assign(t.spec!, extra);
  return t;
}

async function deployment(ns: string, w: Workload, extra: Partial<k8s.V1PodSpec> = {}) {
  await env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template: template(w, extra) },
    },
  });
}

async function statefulSet(ns: string, w: Workload) {
  await env.apps.createNamespacedStatefulSet({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: {
        replicas: 1,
        serviceName: w.name,
        selector: { matchLabels: { app: w.name } },
        template: template(w),
      },
    },
  });
}

async function drain(node: string, timeoutSeconds: number) {
  const started = Date.now();
  const res = await env.kubectl(["drain", node, "--ignore-daemonsets", `--timeout=${timeoutSeconds}s`]);
  await kubectl("uncordon", node);
  return { ...res, seconds: (Date.now() - started) / 1000 };
}

async function onOtherNodes(ns: string, app: string): Promise<k8s.V1Pod> {
  return waitFor(
    `${app} running off node-a`,
    async () => {
      const pods = await livePods(env, ns, app);
      const ready = pods.filter((p) => p.spec?.nodeName !== "node-a" && p.status?.phase === "Running");
      return pods.length === 1 && ready.length === 1 ? ready[0] : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

describe("kubectl drain", () => {
  let liveSeconds = 0;

  it("moves three selected consumers live (0 lost, 0 applied twice), evicts an unselected one normally, and completes", async () => {
    const ns = setup.ns;
    const [d1, d2, s1, plain] = ["live-d1", "live-d2", "live-s1", "plain"].map((n) =>
      workloadNames(ns, n, setup.work),
    );
    for (const w of [d1!, d2!, s1!]) await createPolicy(env, ns, w);
    await onNodeA(ns, async () => {
      await deployment(ns, d1!);
      await deployment(ns, d2!);
      await statefulSet(ns, s1!);
      await deployment(ns, plain!);
    }, ["live-d1", "live-d2", "live-s1", "plain"]);
    const plainBefore = (await livePods(env, ns, "plain"))[0]!.metadata!.name!;
    const producers = [d1!, d2!, s1!].map((w) => new TestProducer(env, w, 20));
    for (const p of producers) await p.start();
    await sleep(2_000);

    const res = await drain("node-a", 180);
    liveSeconds = res.seconds;
    console.log(`[drain] live: ${res.seconds.toFixed(1)} s\n${res.stdout}${res.stderr}`);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/being migrated live to another node by ms2m/);

    // A Sequential move frees node-a when its source is deleted, before the target (same name)
    // has restored elsewhere: kubectl's retry then finds no pod there and the drain may end first.
    for (const m of await evictionMigrations(env, ns)) await waitForCompletion(env, ns, m.metadata.name!);
    const migrations = await evictionMigrations(env, ns);
    expect(
      migrations
        .map(
          (m) =>
            `${m.metadata.annotations?.["migration.ms2m.io/evicted-pod"]?.replace(/-0$|-[a-z0-9]{6,10}-[a-z0-9]{5}$/, "")}:${m.status?.phase}`,
        )
        .sort(),
    ).toEqual(["live-d1:Completed", "live-d2:Completed", "live-s1:Completed"]);
    for (const m of migrations) {
      expect(m.spec.targetNode).toBeUndefined();
      expect(["node-b", "node-c"]).toContain(m.status?.targetNode);
      expect(m.status?.targetNodeReason).toMatch(/^node-[bc]: fits/);
    }
    for (const app of ["live-d1", "live-d2", "live-s1"]) await onOtherNodes(ns, app);
    // The unselected pod was evicted as before: a fresh pod elsewhere.
    const plainAfter = await onOtherNodes(ns, "plain");
    expect(plainAfter.metadata?.name).not.toBe(plainBefore);

    const kinds = { "live-d1": "deploy", "live-d2": "deploy", "live-s1": "sts" } as const;
    for (const [i, w] of [d1!, d2!, s1!].entries()) {
      const report = await finalAccounting(
        env,
        ns,
        w,
        producers[i]!,
        stopper(env, ns, kinds[w.name as keyof typeof kinds], w.name),
      );
      expect(report.lost, w.name).toEqual([]);
      expect(report.appliedTwice, w.name).toEqual([]);
      expect(report.ok, w.name).toBe(true);
    }
  });

  it("for comparison: a plain drain of the same pods (no policy: cold restarts)", async () => {
    const ns = `${setup.ns}`;
    const [d1, d2, s1] = ["cold-d1", "cold-d2", "cold-s1"].map((n) => workloadNames(ns, n, setup.work));
    await onNodeA(ns, async () => {
      await deployment(ns, d1!);
      await deployment(ns, d2!);
      await statefulSet(ns, s1!);
    }, ["cold-d1", "cold-d2", "cold-s1"]);
    const before = (await evictionMigrations(env, ns)).length;
    const res = await drain("node-a", 180);
    console.log(`[drain] cold: ${res.seconds.toFixed(1)} s (live: ${liveSeconds.toFixed(1)} s)`);
    expect(res.code, res.stderr).toBe(0);
    expect((await evictionMigrations(env, ns)).length).toBe(before);
    for (const w of [d1!, d2!, s1!])
      await env.kubectl([
        "-n",
        ns,
        "delete",
        w.name.endsWith("s1") ? "sts" : "deploy",
        w.name,
        "--wait=false",
      ]);
  });

  it("respects a PodDisruptionBudget: a Sequential move would stop the pod, so the drain waits; a ShadowPod one goes ahead", async () => {
    const ns = setup.ns;
    const [web, db] = ["pdb-web", "pdb-db"].map((n) => workloadNames(ns, n, setup.work));
    for (const w of [web!, db!]) {
      await createPolicy(env, ns, w);
      await env.kc
        .makeApiClient((await import("@kubernetes/client-node")).PolicyV1Api)
        .createNamespacedPodDisruptionBudget({
          namespace: ns,
          body: {
            metadata: { name: w.name },
            spec: { maxUnavailable: 0, selector: { matchLabels: { app: w.name } } },
          },
        });
    }
    await onNodeA(ns, async () => {
      await deployment(ns, web!);
      await statefulSet(ns, db!);
    }, ["pdb-web", "pdb-db"]);
    const dbPod = (await livePods(env, ns, "pdb-db"))[0]!;
    const res = await drain("node-a", 40);
    // The drain gives up on the StatefulSet's pod (as for any eviction a budget refuses) ...
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/would violate PodDisruptionBudget pdb-db/);
    const stillThere = (await livePods(env, ns, "pdb-db"))[0]!;
    expect(stillThere.metadata?.uid).toBe(dbPod.metadata?.uid);
    expect(stillThere.spec?.nodeName).toBe("node-a");
    // ... while the Deployment's pod moved live, the budget never violated.
    await onOtherNodes(ns, "pdb-web");
    const moved = (await evictionMigrations(env, ns)).filter((m) => m.spec.sourcePod.startsWith("pdb-"));
    expect(moved.map((m) => [m.spec.sourcePod.startsWith("pdb-web"), m.status?.phase])).toEqual([
      [true, "Completed"],
    ]);
    for (const w of [web!, db!])
      await env.kubectl(["-n", ns, "delete", w.name === "pdb-db" ? "sts" : "deploy", w.name, "--wait=false"]);
  });

  it("with the webhook down, the drain still completes with plain evictions", async () => {
    const ns = setup.ns;
    const w = workloadNames(ns, "nohook", setup.work);
    await createPolicy(env, ns, w);
    await onNodeA(ns, () => deployment(ns, w), ["nohook"]);
    await setup.controller.stop();
    try {
      const res = await drain("node-a", 120);
      expect(res.code, res.stderr).toBe(0);
      await onOtherNodes(ns, "nohook");
      expect(
        (await evictionMigrations(env, ns)).filter((m) => m.spec.sourcePod.startsWith("nohook")),
      ).toEqual([]);
    } finally {
      await setup.controller.start();
    }
  });
});

describe("automatic target selection", () => {
  it("honours the pod's nodeSelector and skips a cordoned node, and says why", async () => {
    const ns = setup.ns;
    const w = workloadNames(ns, "gold", setup.work);
    for (const n of ["node-a", "node-b", "node-c"])
      await kubectl("label", "node", n, "ms2m-test/tier=gold", "--overwrite");
    await kubectl("label", "node", "node-c", "ms2m-test/tier-", "--overwrite"); // only a and b are gold
    await kubectl("label", "node", "node-c", "ms2m-test/tier=silver", "--overwrite");
    const extraNode = "node-d";
    await env.cluster.startNode(extraNode, {
      index: 3,
      labels: { "ms2m-test/tier": "gold" },
      images: simulatedImages(),
    });
    try {
      await waitForNodeReady(env.kc, extraNode);
      await onNodeA(ns, () => deployment(ns, w, { nodeSelector: { "ms2m-test/tier": "gold" } }), ["gold"]);
      await kubectl("cordon", "node-b");
      const source = (await livePods(env, ns, "gold"))[0]!.metadata!.name!;
      const producer = new TestProducer(env, w, 20);
      await producer.start();
      await createMigration(env, ns, "gold-auto", w, { sourcePod: source });
      const m = await waitForCompletion(env, ns, "gold-auto", 120_000);
      expect(m.status?.targetNode).toBe(extraNode);
      const reason = m.status?.targetNodeReason ?? "";
      expect(reason).toMatch(/^node-d: fits/);
      expect(reason).toContain("not node-b: cordoned (unschedulable)");
      expect(reason).toContain(
        "not node-c: lacks label ms2m-test/tier=gold required by the pod's nodeSelector",
      );
      const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
      expect(report.ok).toBe(true);
    } finally {
      await kubectl("uncordon", "node-b");
      await env.cluster.stopNode(extraNode);
    }
  });

  it("fails in Pending with every node's reason when no node fits; the pod keeps serving", async () => {
    const ns = setup.ns;
    const w = workloadNames(ns, "lonely", setup.work);
    await kubectl("label", "node", "node-a", "ms2m-test/only=here", "--overwrite");
    try {
      await deployment(ns, w, { nodeSelector: { "ms2m-test/only": "here" } });
      const [p] = await waitForConsumers(env, ns, "lonely", 1);
      const producer = new TestProducer(env, w, 20);
      await producer.start();
      await createMigration(env, ns, "lonely-auto", w, { sourcePod: p!.metadata!.name! });
      const m = await waitFor(
        "lonely-auto Failed",
        async () => {
          const got = await getMigration(env, ns, "lonely-auto");
          return got?.status?.phase === "Failed" ? got : undefined;
        },
        { timeoutMs: 60_000 },
      );
      expect(m.status?.failure).toMatchObject({ phase: "Pending", reason: "NoTargetNode" });
      expect(m.status?.failure?.message).toMatch(
        /^no node can take pod lonely-.*: node-b: lacks label ms2m-test\/only=here required by the pod's nodeSelector; node-c: lacks label/,
      );
      const after = (await livePods(env, ns, "lonely"))[0]!;
      expect(after.metadata?.uid).toBe(p!.metadata?.uid);
      const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
      expect(report.ok).toBe(true);
    } finally {
      await kubectl("label", "node", "node-a", "ms2m-test/only-");
    }
  });
});
