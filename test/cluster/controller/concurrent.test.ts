import { afterAll, beforeAll, expect, it, vi } from "vitest";
import {
  controllerOf,
  controllerTestEnv,
  createDeployment,
  createMigration,
  finalAccounting,
  livePods,
  phaseMillis,
  setupFile,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";
import { sleep } from "../../harness/exec.ts";

// Several Deployments migrated at once (each consumer under load): every migration completes
// with the ownership guarantees and zero lost. MS2M_CONCURRENT_MIGRATIONS sets how many.
const N = Number(process.env.MS2M_CONCURRENT_MIGRATIONS ?? 10);
vi.setConfig({ testTimeout: 240_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  setup = await setupFile(env, "conc");
});
afterAll(async () => {
  await setup?.teardown();
});

it(`${N} concurrent ShadowPod Direct migrations complete`, async () => {
  const { ns, work } = setup;
  const ws = Array.from({ length: N }, (_, i) => workloadNames(ns, `w${i}`, work));
  await Promise.all(ws.map((w) => createDeployment(env, ns, w, "node-a")));
  const sources = await Promise.all(ws.map(async (w) => (await waitForConsumers(env, ns, w.name, 1))[0]));
  const producers = ws.map((w) => new TestProducer(env, w, 10));
  await Promise.all(producers.map((p) => p.start()));
  await sleep(1_000);

  const started = Date.now();
  await Promise.all(
    ws.map((w, i) =>
      createMigration(env, ns, `m-${w.name}`, w, {
        sourcePod: sources[i]?.metadata?.name ?? "",
        targetNode: "node-b",
      }),
    ),
  );
  const done = await Promise.all(ws.map((w) => waitForCompletion(env, ns, `m-${w.name}`, 200_000)));
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
    const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
    expect(target.spec?.nodeName).toBe("node-b");
    expect(controllerOf(target)?.kind).toBe("ReplicaSet");
    const pods = await livePods(env, ns, w.name);
    expect(pods.map((p) => p.metadata?.uid)).toEqual([target.metadata?.uid]);
  }
  const reports = await Promise.all(
    ws.map((w, i) => finalAccounting(env, ns, w, producers[i]!, stopper(env, ns, "deploy", w.name))),
  );
  for (const r of reports) {
    expect(r.lost).toEqual([]);
    expect(r.appliedTwice).toEqual([]);
    expect(r.ok).toBe(true);
  }
});
