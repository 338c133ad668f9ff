// Controller-added latency: N migrations (Deployment + ShadowPod + Direct, the reference consumer
// under a small producer) on a local cluster with simulated nodes and zero simulated latencies;
// each migration's phases split into the time inside external operations (agent checkpoint,
// transfer, kubelet/pod start, broker replay: bench/latency/breakdown.ts) and the controller's
// own remainder. Prints the breakdown table (median and p95 per phase, milliseconds) and, last,
// `controller-added p50 <N> ms p95 <M> ms`. Writes results.json and summary.md to --out (default:
// a temp folder, removed at the end). Progress on stderr.
//
//   node bench/latency/run.ts [--n 20] [--rate 10] [--warmup-ms 500] [--out DIR]
import { mkdirSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { sleep } from "../../tooling/exec.ts";
import { removeTempDir, tempDir } from "../../tooling/temp-dir.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import {
  agentSeconds,
  ControllerProcess,
  createDeployment,
  createMigration,
  createNamespace,
  deleteMigration,
  deployMs2m,
  finalAccounting,
  phaseMillis,
  stackEnv,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
  type ControllerTestEnv,
} from "../../tooling/stack/index.ts";
import {
  addedLine,
  breakdown,
  externalMs,
  summarize,
  table,
  ZERO_LATENCIES,
  type Breakdown,
} from "./breakdown.ts";

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20" },
    rate: { type: "string", default: "10" },
    "warmup-ms": { type: "string", default: "500" },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    (await readFile(new URL(import.meta.url), "utf8"))
      .split("\n")
      .filter((l) => l.startsWith("//"))
      .join("\n"),
  );
  process.exit(0);
}
const n = Number(args.n);
const rate = Number(args.rate);
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer (got ${args.n})`);
const out = args.out ? resolve(args.out) : tempDir("bench-latency");
mkdirSync(out, { recursive: true });
const say = (s: string) => process.stderr.write(`${s}\n`);

interface Run {
  i: number;
  outcome: string;
  phases: Record<string, number>;
  external: ReturnType<typeof externalMs>;
  breakdown: Breakdown;
  lost: number;
  duplicated: number;
}

const stops: (() => Promise<void>)[] = [];
async function stopAll(): Promise<void> {
  for (const s of stops.splice(0).reverse()) await s().catch((e: unknown) => say(`cleanup: ${String(e)}`));
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say(`${sig}: cleaning up (again to exit at once)`);
    void stopAll().finally(() => process.exit(130));
  });

async function migrateOnce(env: ControllerTestEnv, ns: string, work: string, i: number): Promise<Run> {
  const w = workloadNames(ns, `lat-${i}`, work);
  await createDeployment(env, ns, w, "node-a");
  try {
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const pod = source?.metadata?.name ?? "";
    const producer = new TestProducer(env, w, rate);
    await producer.start();
    await sleep(Number(args["warmup-ms"]));
    const name = `m-lat-${i}`;
    await createMigration(env, ns, name, w, {
      sourcePod: pod,
      targetNode: "node-b",
      migrationStrategy: "ShadowPod",
      transferMode: "Direct",
    });
    const m = await waitForCompletion(env, ns, name, 120_000);
    const phases = phaseMillis(m);
    const external = externalMs(await agentSeconds(env, pod), ZERO_LATENCIES, phases);
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    await deleteMigration(env, ns, name).catch(() => undefined);
    return {
      i,
      outcome: m.status?.phase ?? "?",
      phases,
      external,
      breakdown: breakdown(phases, external),
      lost: report.lost.length,
      duplicated: report.appliedTwice.length,
    };
  } finally {
    await env.apps.deleteNamespacedDeployment({ namespace: ns, name: w.name }).catch(() => undefined);
  }
}

const runs: Run[] = [];
const load = { before: loadavg(), after: [0, 0, 0] };
let ns = "";
let env: ControllerTestEnv | undefined;
try {
  const t0 = Date.now();
  say("starting the local control plane and two simulated nodes (zero latencies)…");
  const local = await startLocalCluster();
  stops.push(() => local.stop());
  env = stackEnv(local.cluster.info);
  for (const node of local.cluster.nodeNames()) await local.cluster.node(node).setLatencies(ZERO_LATENCIES);
  const work = join(out, "work");
  mkdirSync(work, { recursive: true });
  const { caFile } = await deployMs2m(env, work);
  const controller = new ControllerProcess(env, work, caFile, { LOG_LEVEL: "info" });
  await controller.start();
  stops.push(() => controller.stop());
  ns = await createNamespace(env, "lat");
  say(`cluster, ms2m and controller ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 1; i <= n && !interrupted; i++) {
    const r = await migrateOnce(env, ns, work, i);
    runs.push(r);
    say(
      `#${i} ${r.outcome}: total ${r.breakdown.total} ms, external ${r.breakdown.external} ms ` +
        `(checkpoint ${r.external.checkpoint}, transfer ${r.external.transfer}, pod start ${r.external.podStart}, ` +
        `replay ${r.external.replay}), added ${r.breakdown.added} ms; lost ${r.lost}, twice ${r.duplicated}`,
    );
  }
} finally {
  if (ns && env) {
    await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    const workloads = runs.map((r) => `lat-${r.i}`);
    await deleteBrokerObjects(runMatcher(ns, workloads, [])).catch(() => undefined);
  }
  await stopAll();
}
load.after = loadavg();

const summary = summarize(runs.map((r) => r.breakdown));
const loadText = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
const header =
  `${runs.length} migrations (Deployment + ShadowPod + Direct, ${rate} msg/s), simulated nodes with zero latencies; ` +
  `load average ${loadText(load.before)} before, ${loadText(load.after)} after. Milliseconds; ` +
  `external = agent checkpoint (Checkpointing) + agent send (Transferring) + simulated pod start (Restoring) + ` +
  `the whole Replaying phase (broker replay); controller = duration − external.`;
const lost = runs.reduce((a, r) => a + r.lost, 0);
const twice = runs.reduce((a, r) => a + r.duplicated, 0);
const failed = runs.filter((r) => r.outcome !== "Completed").length;
const outcome = `${runs.length - failed}/${runs.length} Completed, ${lost} lost, ${twice} applied twice`;
writeFileSync(join(out, "results.json"), `${JSON.stringify({ load, rate, runs, summary }, null, 2)}\n`);
writeFileSync(
  join(out, "summary.md"),
  `# Controller-added latency\n\n${header}\n\n${outcome}\n\n${table(summary)}\n\n${addedLine(summary)}\n`,
);
console.log(header);
console.log(outcome);
console.log();
console.log(table(summary));
console.log();
if (args.out) say(`results in ${out}`);
else await removeTempDir(out);
console.log(addedLine(summary));
if (failed > 0 || lost > 0 || twice > 0) process.exitCode = 1;
