// Controller scale benchmarks on the local simulated cluster (real control plane, simulated
// node-a and node-b, the controller binary as its ServiceAccount, as the tests run it).
//
//   node bench/scale/run.ts concurrent [--n 100] [--messaging 10] [--rate 10] [--workers W]
//                                      [--latencies zero|real] [--timeout-s 900]
//     N migrations applied at once, node-a → node-b, ShadowPod + Direct, one Deployment per
//     migration. N − K run the counter test app (ms2m.test/counter:dev, no messaging); K run the
//     reference consumer under a producer (--rate msg/s each) with replay and message accounting.
//     Reports completed/failed, wall time, p50/p95 per migration, controller CPU seconds and peak
//     RSS (/proc), and API requests per migration (kube-apiserver's APF counter for a FlowSchema
//     that matches only the controller's ServiceAccount).
//   node bench/scale/run.ts objects [--count 1000]
//     --count migrations whose source pod does not exist (each fails fast in Pending:
//     SourcePodNotFound), two rounds of create → all Failed → delete: time until all are Failed,
//     reconciles and requests, and at each step the controller's RSS, heap gauge and live heap
//     after a forced full GC (the controller runs with --inspect on loopback for that).
//   node bench/scale/run.ts startup [--count 1000] [--times 5]
//     spawn → /readyz 200 of the controller binary, --times starts each with 0 and with --count
//     objects (as in `objects`).
//   node bench/scale/run.ts all [flags of all three]
//
// Every subcommand: --binary bundle (default: the esbuild bundle with the Dockerfile's node
// flags, as the image runs it) or source (node cmd/ms2m-controller/main.ts, as the tests run it);
// --node-args="..." more node flags for the controller (e.g. --node-args="--cpu-prof --cpu-prof-dir=DIR");
// --controller-ref REF runs the controller of another commit instead (a git worktree of REF with
// this checkout's node_modules; its bundle built by its own hack/images/bundle.ts and run with its
// own Dockerfile's node flags), on the same harness and cluster: for before/after runs.
//
// Each subcommand starts and removes its own cluster; --out DIR (default bench/scale/out/<time>)
// gets <subcommand>.json and <subcommand>.md. Queues and exchanges the run made are deleted.
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { REAL_CLUSTER_LATENCIES, type Latencies } from "../../sim/config.ts";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { sleep, waitFor } from "../../tooling/exec.ts";
import { mustSucceed, repoPath } from "../../tooling/stack/manifests.ts";
import { COUNTER_IMAGE } from "../../tooling/cluster/nodes.ts";
import {
  createDeployment,
  createMigration,
  createNamespace,
  deployMs2m,
  finalAccounting,
  isReady,
  stackEnv,
  stopper,
  TestProducer,
  waitForConsumers,
  workloadNames,
  type StackEnv,
  type Workload,
} from "../../tooling/stack/index.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import {
  BenchController,
  controllerRequests,
  type BenchControllerOptions,
  installRequestCounter,
  loadAverage,
  metricSum,
  quantile,
} from "./probe.ts";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    n: { type: "string", default: "100" },
    messaging: { type: "string", default: "10" },
    rate: { type: "string", default: "10" },
    workers: { type: "string" },
    binary: { type: "string", default: "bundle" },
    "node-args": { type: "string", default: "" },
    "controller-ref": { type: "string" },
    latencies: { type: "string", default: "zero" },
    "timeout-s": { type: "string", default: "900" },
    count: { type: "string", default: "1000" },
    times: { type: "string", default: "5" },
    out: { type: "string", default: `bench/scale/out/${new Date().toISOString().replace(/[:.]/g, "-")}` },
    help: { type: "boolean", default: false },
  },
});
const sub = positionals[0] ?? "";
if (args.help || !["concurrent", "objects", "startup", "all"].includes(sub)) {
  console.log(
    (await readFile(new URL(import.meta.url), "utf8"))
      .split("\n")
      .filter((l) => l.startsWith("//"))
      .join("\n"),
  );
  process.exit(args.help ? 0 : 2);
}
if (args.binary !== "bundle" && args.binary !== "source") {
  console.error(`--binary: bundle or source, not ${args.binary}`);
  process.exit(2);
}
const out = resolve(args.out);
mkdirSync(out, { recursive: true });
const controllerOpts: BenchControllerOptions = {
  binary: args.binary,
  nodeArgs: args["node-args"].split(" ").filter(Boolean),
  ...(args["controller-ref"]
    ? { root: worktreeOf(args["controller-ref"], join(out, "controller-ref")) }
    : {}),
};
const say = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const GROUP = { group: "migration.ms2m.io", version: "v1alpha1", plural: "statefulmigrations" };
const mib = (kib: number) => Math.round(kib / 1024);
const fmtS = (ms: number) => (ms / 1000).toFixed(2);

// ---- the cluster ----
interface Bench {
  env: StackEnv;
  work: string;
  caFile: string;
  stop(): Promise<void>;
}

let current: Bench | undefined;
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say(`${sig}: cleaning up (again to exit at once)`);
    void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

async function startBench(latencies?: Latencies): Promise<Bench> {
  const t0 = Date.now();
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch((e: unknown) => say(`cleanup: ${String(e)}`));
  };
  try {
    const local = await startLocalCluster();
    stops.push(() => local.stop());
    const { cp, cluster } = local;
    const env = stackEnv(cluster.info);
    const work = await mkdtemp(join(tmpdir(), "ms2m-scale-"));
    stops.push(() => rm(work, { recursive: true, force: true }));
    const { caFile } = await deployMs2m(env, work);
    if (latencies) for (const n of cluster.nodeNames()) await cluster.node(n).setLatencies(latencies);
    await installRequestCounter(env);
    say(`cluster (slot ${cp.net.slot}) and ms2m ready in ${fmtS(Date.now() - t0)} s`);
    current = { env, work, caFile, stop };
    return current;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function listMigrations(env: StackEnv, ns: string): Promise<StatefulMigration[]> {
  const res = (await env.custom.listNamespacedCustomObject({ ...GROUP, namespace: ns })) as {
    items: StatefulMigration[];
  };
  return res.items;
}

/** Runs `fn` over items with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

function save(name: string, result: object, markdown: string): void {
  writeFileSync(join(out, `${name}.json`), JSON.stringify(result, null, 2) + "\n");
  writeFileSync(join(out, `${name}.md`), markdown + "\n");
  console.log(markdown + "\n");
}

// ---- N concurrent migrations ----
async function concurrent(): Promise<void> {
  const n = Number(args.n);
  const k = Math.min(n, Number(args.messaging));
  const rate = Number(args.rate);
  const latencies = args.latencies === "real" ? REAL_CLUSTER_LATENCIES : undefined;
  const loadBefore = loadAverage();
  const b = await startBench(latencies);
  const { env } = b;
  const controller = new BenchController(
    env,
    b.work,
    b.caFile,
    args.workers ? { MAX_CONCURRENT_RECONCILES: args.workers } : {},
    controllerOpts,
  );
  const ns = await createNamespace(env, "scale");
  const names: string[] = [];
  const uids: string[] = [];
  const producers: TestProducer[] = [];
  try {
    await controller.start();
    // N − K counters, K reference consumers; one Deployment each, pinned to node-a.
    const counters = Array.from({ length: n - k }, (_, i) => `c${i}`);
    const consumers: Workload[] = Array.from({ length: k }, (_, i) => workloadNames(ns, `m${i}`, b.work));
    names.push(...counters, ...consumers.map((w) => w.name));
    say(`creating ${counters.length} counter and ${consumers.length} consumer Deployments on node-a`);
    await pool(counters, 20, (name) =>
      env.apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                nodeName: "node-a",
                terminationGracePeriodSeconds: 5,
                containers: [
                  {
                    name: "counter",
                    image: COUNTER_IMAGE,
                    env: [{ name: "COUNTER_INTERVAL_MS", value: "1000" }],
                  },
                ],
              },
            },
          },
        },
      }),
    );
    await pool(consumers, 10, (w) => createDeployment(env, ns, w, "node-a"));
    const readyAll = Date.now();
    const pods = await waitFor(
      `${n} source pods ready`,
      async () => {
        const list = await env.core.listNamespacedPod({ namespace: ns });
        const ready = list.items.filter(isReady);
        return ready.length === n ? ready : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 1_000 },
    );
    say(`${n} source pods ready in ${fmtS(Date.now() - readyAll)} s`);
    for (const w of consumers) await waitForConsumers(env, ns, w.name, 1);
    const podOf = new Map(pods.map((p) => [p.metadata?.labels?.app ?? "", p.metadata?.name ?? ""]));
    for (const w of consumers) {
      const p = new TestProducer(env, w, rate);
      producers.push(p);
      await p.start();
    }
    await sleep(2_000);

    // Apply all at once.
    const cpu0 = controller.sample();
    const idleMetrics = await controller.metrics();
    const req0 = await controllerRequests(env);
    const loadAt = loadAverage();
    const created = new Map<string, number>();
    const t0 = Date.now();
    await Promise.all(
      names.map(async (name) => {
        const w = consumers.find((c) => c.name === name);
        await createMigration(env, ns, `m-${name}`, w, {
          sourcePod: podOf.get(name) ?? "",
          targetNode: "node-b",
        });
        created.set(`m-${name}`, Date.now());
      }),
    );
    const applied = Date.now() - t0;
    say(`${n} StatefulMigrations created in ${fmtS(applied)} s`);
    let peakRss = 0;
    const done = await waitFor(
      `${n} migrations finished`,
      async () => {
        peakRss = Math.max(peakRss, controller.sample().rssKiB);
        const ms = await listMigrations(env, ns);
        const fin = ms.filter((m) => ["Completed", "Failed"].includes(m.status?.phase ?? ""));
        return fin.length === n ? ms : undefined;
      },
      { timeoutMs: Number(args["timeout-s"]) * 1000, intervalMs: 500 },
    );
    const lastDone = Math.max(...done.map((m) => Date.parse(m.status?.completionTime ?? "")));
    const wallMs = lastDone - t0;
    await sleep(2_000); // the last status writes and events
    const cpu1 = controller.sample();
    const req1 = await controllerRequests(env);
    const metrics = await controller.metrics();
    const loadAfter = loadAverage();
    for (const m of done) if (m.metadata?.uid) uids.push(m.metadata.uid);
    const completed = done.filter((m) => m.status?.phase === "Completed");
    const failed = done.filter((m) => m.status?.phase !== "Completed");
    const e2e = done.map(
      (m) => Date.parse(m.status?.completionTime ?? "") - (created.get(m.metadata?.name ?? "") ?? t0),
    );
    const inController = done.map(
      (m) => Date.parse(m.status?.completionTime ?? "") - Date.parse(m.status?.startTime ?? ""),
    );
    const queued = done.map(
      (m) => Date.parse(m.status?.startTime ?? "") - (created.get(m.metadata?.name ?? "") ?? t0),
    );

    // Message accounting of the K consumers.
    const reports = await Promise.all(
      consumers.map((w, i) =>
        finalAccounting(env, ns, w, producers[i]!, stopper(env, ns, "deploy", w.name)).catch(
          (err: unknown) => ({ error: String(err) }) as never,
        ),
      ),
    );
    // Per phase (status.phaseTimings): where the time went.
    const phaseNames = ["Pending", "Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing"];
    const phases = Object.fromEntries(
      phaseNames.map((p) => {
        const v = done.flatMap((m) =>
          (m.status?.phaseTimings ?? [])
            .filter((t) => t.phase === p && t.durationMillis !== undefined)
            .map((t) => t.durationMillis!),
        );
        return [p, { p50: quantile(v, 0.5), p95: quantile(v, 0.95) }];
      }),
    );
    const lost = reports.reduce((a, r) => a + (r.lost?.length ?? 0), 0);
    const twice = reports.reduce((a, r) => a + (r.appliedTwice?.length ?? 0), 0);
    const published = reports.reduce((a, r) => a + (r.published ?? 0), 0);

    const requests = req1 - req0;
    const result = {
      n,
      counters: n - k,
      consumers: k,
      ratePerConsumer: rate,
      latencies: latencies ? "real" : "zero",
      workers: args.workers ?? "10 (default)",
      binary: controller.binary,
      ...(args["controller-ref"] ? { controllerRef: args["controller-ref"] } : {}),
      nodeFlags: (await controller.argv()).slice(0, -1),
      completed: completed.length,
      failed: failed.map((m) => ({ name: m.metadata?.name, failure: m.status?.failure })),
      createMs: applied,
      wallMs,
      e2eMs: { p50: quantile(e2e, 0.5), p95: quantile(e2e, 0.95), max: Math.max(...e2e) },
      queuedMs: { p50: quantile(queued, 0.5), p95: quantile(queued, 0.95) },
      inControllerMs: { p50: quantile(inController, 0.5), p95: quantile(inController, 0.95) },
      phasesMs: phases,
      controllerCpuS: cpu1.cpuS - cpu0.cpuS,
      controllerRssAtApplyMiB: mib(cpu0.rssKiB),
      controllerPeakRssAtApplyMiB: mib(cpu0.hwmKiB),
      heapUsedAtApplyMiB: Math.round(metricSum(idleMetrics, "nodejs_heap_size_used_bytes") / 2 ** 20),
      controllerPeakRssMiB: mib(Math.max(cpu1.hwmKiB, peakRss)),
      controllerRssAfterMiB: mib(cpu1.rssKiB),
      heapUsedMiB: Math.round(metricSum(metrics, "nodejs_heap_size_used_bytes") / 2 ** 20),
      apiRequests: requests,
      apiRequestsPerMigration: requests / n,
      reconciles: metricSum(metrics, "controller_runtime_reconcile_total"),
      messaging: { published, lost, appliedTwice: twice, errors: reports.filter((r) => "error" in r).length },
      load: { before: loadBefore, atApply: loadAt, after: loadAfter },
    };
    const md = [
      `N=${n} concurrent migrations (ShadowPod + Direct, node-a → node-b; ${n - k} counter pods, ${k} reference consumers at ${rate} msg/s each; sim latencies ${result.latencies}; workers ${result.workers}; controller: ${result.binary}${"controllerRef" in result ? ` of ${result.controllerRef}` : ""}${result.nodeFlags.length ? ` ${result.nodeFlags.join(" ")}` : ""})`,
      "",
      "| metric | value |",
      "|---|---|",
      `| completed / failed | ${completed.length} / ${failed.length} |`,
      `| wall time, first create → last completion | ${fmtS(wallMs)} s |`,
      `| per migration, create → completion: p50 / p95 / max | ${fmtS(result.e2eMs.p50)} / ${fmtS(result.e2eMs.p95)} / ${fmtS(result.e2eMs.max)} s |`,
      `| of which queued before the first reconcile: p50 / p95 | ${fmtS(result.queuedMs.p50)} / ${fmtS(result.queuedMs.p95)} s |`,
      `| status.startTime → completion: p50 / p95 | ${fmtS(result.inControllerMs.p50)} / ${fmtS(result.inControllerMs.p95)} s |`,
      `| per phase p50 / p95 (s): ${phaseNames.map((p) => p.slice(0, 4)).join(", ")} | ${phaseNames.map((p) => `${fmtS(phases[p]!.p50)}/${fmtS(phases[p]!.p95)}`).join(", ")} |`,
      `| controller CPU (utime+stime) during the run | ${result.controllerCpuS.toFixed(1)} s (${((result.controllerCpuS / n) * 1000).toFixed(0)} ms per migration) |`,
      `| controller before the apply (informers synced, ${n} source pods): RSS / VmHWM / heap used | ${result.controllerRssAtApplyMiB} / ${result.controllerPeakRssAtApplyMiB} / ${result.heapUsedAtApplyMiB} MiB |`,
      `| controller peak RSS (VmHWM) / RSS after / heap used after | ${result.controllerPeakRssMiB} / ${result.controllerRssAfterMiB} / ${result.heapUsedMiB} MiB |`,
      `| API requests (kube-apiserver, controller's SA) | ${requests} (${result.apiRequestsPerMigration.toFixed(1)} per migration) |`,
      `| reconciles | ${result.reconciles} |`,
      `| messages (K consumers): published / lost / applied twice | ${published} / ${lost} / ${twice} |`,
      `| load average (1/5/15 min) before / at apply / after | ${loadBefore} / ${loadAt} / ${loadAfter} |`,
    ].join("\n");
    save(`concurrent-n${n}-w${args.workers ?? 10}`, result, md);
    if (failed.length) for (const f of result.failed) say(`failed: ${f.name}: ${JSON.stringify(f.failure)}`);
  } finally {
    for (const p of producers) await p.stop().catch(() => undefined);
    await controller.stop();
    await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    await b.stop();
    current = undefined;
    const gone = await deleteBrokerObjects(runMatcher(ns, names, uids)).catch(() => ({
      queues: 0,
      exchanges: 0,
    }));
    say(`cluster removed; broker: deleted ${gone.queues} queues, ${gone.exchanges} exchanges`);
  }
}

// ---- objects that fail fast ----
async function createFailing(env: StackEnv, ns: string, count: number): Promise<number> {
  const t0 = Date.now();
  await pool(
    Array.from({ length: count }, (_, i) => i),
    20,
    (i) =>
      createMigration(env, ns, `obj-${i}`, undefined, { sourcePod: `missing-${i}`, targetNode: "node-b" }),
  );
  return Date.now() - t0;
}

async function waitAllFailed(env: StackEnv, ns: string, count: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    `${count} migrations Failed`,
    async () => {
      const ms = await listMigrations(env, ns);
      return ms.filter((m) => m.status?.phase === "Failed").length === count ? true : undefined;
    },
    { timeoutMs: 900_000, intervalMs: 1_000 },
  );
  return Date.now() - t0;
}

/** Deletes every migration of the namespace and waits until none is left (one list per second:
 * `kubectl delete --wait` waits object by object, minutes for 1,000). */
async function deleteAllMigrations(env: StackEnv, ns: string): Promise<void> {
  mustSucceed(
    await env.kubectl(["delete", "statefulmigrations", "--all", "-n", ns, "--wait=false"]),
    "delete migrations",
  );
  await waitFor(
    "all migrations gone",
    async () => ((await listMigrations(env, ns)).length === 0 ? true : undefined),
    { timeoutMs: 600_000, intervalMs: 1_000 },
  );
}

/**
 * Two rounds of: create --count failing objects, wait until all are Failed, settle 30 s, delete
 * them all, settle 30 s. Memory is read at every step twice: as the process shows it (RSS,
 * prom-client's heap gauge, garbage included) and as the live heap after a forced full GC
 * (inspector), which is what the controller actually keeps. A per-object leak shows as live
 * heap after the deletes growing from round to round above the idle baseline.
 */
async function objects(): Promise<void> {
  const count = Number(args.count);
  const rounds = 2;
  const loadBefore = loadAverage();
  const b = await startBench();
  const { env } = b;
  const controller = new BenchController(env, b.work, b.caFile, {}, controllerOpts);
  const ns = await createNamespace(env, "objects");
  try {
    await controller.start({ inspect: true });
    await sleep(10_000);
    const heap = (m: Map<string, number>) =>
      Math.round(metricSum(m, "nodejs_heap_size_used_bytes") / 2 ** 20);
    const point = async (label: string) => {
      const m = await controller.metrics();
      const rssMiB = mib(controller.sample().rssKiB);
      const gc = await controller.heapAfterGc();
      say(
        `${label}: RSS ${rssMiB} MiB, heap used ${heap(m)} MiB; after GC: live heap ${gc.heapUsedMiB} MiB ` +
          `(V8 heap reserved ${gc.heapTotalMiB} MiB), external ${gc.externalMiB} MiB, RSS ${gc.rssMiB} MiB`,
      );
      return {
        label,
        rssMiB,
        heapUsedMiB: heap(m),
        liveHeapMiB: gc.heapUsedMiB,
        heapTotalAfterGcMiB: gc.heapTotalMiB,
        externalAfterGcMiB: gc.externalMiB,
        rssAfterGcMiB: gc.rssMiB,
      };
    };
    const points = [await point("idle, 0 objects")];
    const m0 = await controller.metrics();
    const cpu0 = controller.sample().cpuS;
    const req0 = await controllerRequests(env);
    const adds0 = metricSum(m0, "workqueue_adds_total");
    const rec0 = metricSum(m0, "controller_runtime_reconcile_total");
    let createMs = 0;
    let allFailedMs = 0;
    let cpuRound1 = 0;
    let reqRound1 = 0;
    const failedReasons = new Map<string, number>();
    for (let round = 1; round <= rounds; round++) {
      const t0 = Date.now();
      const created = await createFailing(env, ns, count);
      await waitAllFailed(env, ns, count);
      const failedMs = Date.now() - t0;
      if (round === 1) {
        createMs = created;
        allFailedMs = failedMs;
        cpuRound1 = controller.sample().cpuS - cpu0;
        reqRound1 = (await controllerRequests(env)) - req0;
        for (const m of await listMigrations(env, ns)) {
          const r = m.status?.failure?.reason ?? "?";
          failedReasons.set(r, (failedReasons.get(r) ?? 0) + 1);
        }
      }
      say(`round ${round}: ${count} Failed ${fmtS(failedMs)} s after the first create`);
      points.push(await point(`round ${round}: all ${count} Failed`));
      await sleep(30_000);
      points.push(await point(`round ${round}: 30 s later`));
      await deleteAllMigrations(env, ns);
      await sleep(30_000);
      points.push(await point(`round ${round}: all deleted, 30 s later`));
    }
    const s2 = controller.sample();
    const m2 = await controller.metrics();
    const loadAfter = loadAverage();
    const result = {
      count,
      rounds,
      kind: "source pod missing: each fails in Pending (SourcePodNotFound)",
      reasons: Object.fromEntries(failedReasons),
      createMs,
      allFailedMs,
      controllerCpuS: cpuRound1,
      apiRequests: reqRound1,
      workqueueAdds: metricSum(m2, "workqueue_adds_total") - adds0,
      reconciles: metricSum(m2, "controller_runtime_reconcile_total") - rec0,
      peakRssMiB: mib(s2.hwmKiB),
      memory: points,
      load: { before: loadBefore, after: loadAfter },
    };
    const md = [
      `${count} StatefulMigrations whose source pod does not exist (each fails fast in Pending: ${[...failedReasons].map(([r, c]) => `${c}× ${r}`).join(", ")}), ${rounds} rounds of create → all Failed → delete`,
      "",
      "| metric (round 1) | value |",
      "|---|---|",
      `| created (20 in flight) in | ${fmtS(createMs)} s |`,
      `| first create → all ${count} Failed | ${fmtS(allFailedMs)} s |`,
      `| controller CPU for the ${count} (until all Failed) | ${cpuRound1.toFixed(1)} s |`,
      `| API requests (controller's SA, until all Failed) | ${reqRound1} (${(reqRound1 / count).toFixed(1)} per object) |`,
      `| work-queue adds / reconciles (both rounds, deletes included) | ${result.workqueueAdds} / ${result.reconciles} |`,
      `| controller peak RSS (VmHWM) | ${result.peakRssMiB} MiB |`,
      `| load average before / after | ${loadBefore} / ${loadAfter} |`,
      "",
      "| point | RSS | heap used (prom-client, garbage included) | after a forced full GC: live heap / V8 heap reserved / external / RSS |",
      "|---|---|---|---|",
      ...points.map(
        (p) =>
          `| ${p.label} | ${p.rssMiB} MiB | ${p.heapUsedMiB} MiB | ${p.liveHeapMiB} / ${p.heapTotalAfterGcMiB} / ${p.externalAfterGcMiB} / ${p.rssAfterGcMiB} MiB |`,
      ),
    ].join("\n");
    save("objects", result, md);
  } finally {
    await controller.stop();
    await b.stop();
    current = undefined;
  }
}

// ---- start-to-ready ----
async function startup(): Promise<void> {
  const count = Number(args.count);
  const times = Number(args.times);
  const loadBefore = loadAverage();
  const b = await startBench();
  const { env } = b;
  const controller = new BenchController(env, b.work, b.caFile, {}, controllerOpts);
  const rows: {
    objects: number;
    ms: number[];
    firstPassMs: number[];
    rssMiB?: number;
    heapUsedMiB?: number;
  }[] = [];
  const measure = async (objectCount: number) => {
    const ms: number[] = [];
    const firstPassMs: number[] = [];
    for (let i = 0; i < times; i++) {
      const readyMs = await controller.start();
      ms.push(readyMs);
      // After ready: until every object went through one reconcile (the informer's initial list).
      const t = Date.now();
      if (objectCount > 0) {
        await waitFor(
          "first pass",
          async () => {
            const m = await controller.metrics();
            return metricSum(m, "controller_runtime_reconcile_total") >= objectCount ? true : undefined;
          },
          { timeoutMs: 300_000, intervalMs: 50 },
        );
        firstPassMs.push(readyMs + Date.now() - t);
      }
      let mem: { rssMiB: number; heapUsedMiB: number } | undefined;
      if (i === times - 1) {
        // The last start: memory of a fresh controller holding the objects, 30 s after ready.
        await sleep(30_000);
        const m = await controller.metrics();
        mem = {
          rssMiB: mib(controller.sample().rssKiB),
          heapUsedMiB: Math.round(metricSum(m, "nodejs_heap_size_used_bytes") / 2 ** 20),
        };
      }
      await controller.stop();
      await sleep(1_000);
      if (mem) rows.push({ objects: objectCount, ms, firstPassMs, ...mem });
    }
    if (!rows.some((r) => r.objects === objectCount)) rows.push({ objects: objectCount, ms, firstPassMs });
    say(`start-to-ready with ${objectCount} objects: ${ms.map((x) => x.toFixed(0)).join(", ")} ms`);
  };
  try {
    await measure(0);
    const ns = await createNamespace(env, "startup");
    await controller.start();
    await createFailing(env, ns, count);
    await waitAllFailed(env, ns, count);
    await controller.stop();
    await measure(count);
    const loadAfter = loadAverage();
    const md = [
      `Controller start-to-ready (spawn of \`node src/cmd/controller.ts\` → first /readyz 200, polled every 10 ms), ${times} starts each`,
      "",
      "| StatefulMigrations in the cluster | median | min | max | spawn → every object reconciled once (median) | fresh controller 30 s after ready: RSS / heap used |",
      "|---|---|---|---|---|---|",
      ...rows.map(
        (r) =>
          `| ${r.objects} | ${fmtS(quantile(r.ms, 0.5))} s | ${fmtS(Math.min(...r.ms))} s | ${fmtS(Math.max(...r.ms))} s | ${r.firstPassMs.length ? `${fmtS(quantile(r.firstPassMs, 0.5))} s` : "–"} | ${r.rssMiB ?? "?"} / ${r.heapUsedMiB ?? "?"} MiB |`,
      ),
      "",
      `load average before / after: ${loadBefore} / ${loadAfter}`,
    ].join("\n");
    save("startup", { times, rows, load: { before: loadBefore, after: loadAfter } }, md);
  } finally {
    await controller.stop();
    await b.stop();
    current = undefined;
  }
}

const subs: Record<string, () => Promise<void>> = { concurrent, objects, startup };
let code = 0;
for (const s of sub === "all" ? ["startup", "objects", "concurrent"] : [sub]) {
  try {
    await subs[s]!();
  } catch (err) {
    say(`${s} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    code = 1;
  }
}
say(`results in ${out}`);
process.exit(code);

/** A worktree of `ref` at `dir` with this checkout's node_modules, removed when the process exits. */
function worktreeOf(ref: string, dir: string): string {
  const git = (...a: string[]) =>
    execFileSync("git", a, { cwd: repoPath("."), stdio: ["ignore", "pipe", "pipe"] });
  git("worktree", "add", "--detach", dir, ref);
  process.on("exit", () => {
    try {
      git("worktree", "remove", "--force", dir);
    } catch {
      // already gone
    }
  });
  symlinkSync(repoPath("node_modules"), join(dir, "node_modules"));
  return dir;
}
