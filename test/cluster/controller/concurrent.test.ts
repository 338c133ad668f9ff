import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import {
  controllerOf,
  controllerTestEnv,
  createDeployment,
  createMigration,
  createStatefulSet,
  finalAccounting,
  livePods,
  phaseMillis,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";
import { sleep } from "../../../tooling/exec.ts";

// Many migrations at once, each consumer under load: every fourth one a StatefulSet moved with
// Sequential + Registry, the others Deployments moved with ShadowPod + Direct. Every migration
// completes with the ownership guarantees and zero lost. MS2M_CONCURRENT_MIGRATIONS sets how many.
const N = Number(process.env.MS2M_CONCURRENT_MIGRATIONS ?? 20);
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let registry: { stop(): Promise<void> } | undefined;

beforeAll(async () => {
  registry = await startRegistry(env.hostIp);
  setup = await setupFile(env, "conc");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
  await registry?.stop();
});

it(`${N} concurrent migrations (ShadowPod Direct and Sequential Registry) complete`, async () => {
  const { ns, work } = setup;
  const sequential = (i: number) => i % 4 === 3;
  const ws = Array.from({ length: N }, (_, i) => workloadNames(ns, `w${i}`, work, sequential(i)));
  await Promise.all(
    ws.map((w, i) =>
      sequential(i) ? createStatefulSet(env, ns, w, "node-a", 1) : createDeployment(env, ns, w, "node-a"),
    ),
  );
  const sources = await Promise.all(ws.map(async (w) => (await waitForConsumers(env, ns, w.name, 1))[0]!));
  const producers = ws.map((w) => new TestProducer(env, w, 10));
  await Promise.all(producers.map((p) => p.start()));
  await sleep(1_000);

  const started = Date.now();
  await Promise.all(
    ws.map((w, i) => {
      const sourcePod = sources[i]?.metadata?.name ?? "";
      return sequential(i)
        ? createMigration(
            env,
            ns,
            `m-${w.name}`,
            { ...w, queue: `${w.queue}.${sourcePod}` },
            {
              sourcePod,
              targetNode: "node-b",
              migrationStrategy: "Sequential",
              transferMode: "Registry",
            },
          )
        : createMigration(env, ns, `m-${w.name}`, w, { sourcePod, targetNode: "node-b" });
    }),
  );
  const done = await Promise.all(ws.map((w) => waitForCompletion(env, ns, `m-${w.name}`, 240_000)));
  const wall = Date.now() - started;
  const totals = done
    .map((m) => Object.values(phaseMillis(m)).reduce((a, b) => a + b, 0))
    .sort((a, b) => a - b);
  console.log(
    `[concurrent] ${N} migrations in ${wall} ms wall; per-migration total ms min/median/max ` +
      `${totals[0]}/${totals[Math.floor(N / 2)]}/${totals[N - 1]}`,
  );

  for (const [i, m] of done.entries()) {
    const w = ws[i]!;
    expect(m.status?.strategy).toBe(sequential(i) ? "Sequential" : "ShadowPod");
    const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
    expect(target.spec?.nodeName).toBe("node-b");
    expect(target.metadata?.uid).not.toBe(sources[i]?.metadata?.uid);
    if (sequential(i)) {
      expect(target.metadata?.name).toBe(sources[i]?.metadata?.name);
      expect(controllerOf(target)).toMatchObject({ kind: "StatefulSet", name: w.name });
    } else {
      expect(controllerOf(target)?.kind).toBe("ReplicaSet");
    }
    const pods = await livePods(env, ns, w.name);
    expect(pods.map((p) => p.metadata?.uid)).toEqual([target.metadata?.uid]);
  }
  const reports = await Promise.all(
    ws.map((w, i) =>
      finalAccounting(
        env,
        ns,
        w,
        producers[i]!,
        stopper(env, ns, sequential(i) ? "sts" : "deploy", w.name),
        sequential(i) ? sources[i]?.metadata?.name : undefined,
      ),
    ),
  );
  for (const r of reports) {
    expect(r.lost).toEqual([]);
    expect(r.appliedTwice).toEqual([]);
    expect(r.ok).toBe(true);
  }
});
