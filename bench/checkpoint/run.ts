// Checkpoint and restore against process memory: the reference consumer with BALLAST_MB of
// written memory (workload/consumer.ts), so that its RSS is about each --rss target, migrated
// node-a → node-b (Deployment + ShadowPod + Direct) by the controller, several times per size, on
// real nodes (kubelet + CRI-O + runc + CRIU) and, in the same run, on simulated nodes with
// REAL_CLUSTER_LATENCIES and with zero latencies (the simulator's own mechanism). Per migration:
//  - RSS: VmRSS of the container's process (/proc/<pid>/status; real: the pid CRI-O reports, so
//    the process inside the container), before the migration on node-a and after it on node-b;
//  - kubelet checkpoint: the source agent's `POST /checkpoint/...` to its node's kubelet, as the
//    controller has it done (the agent's "checkpoint created" seconds: kubelet → CRI-O → runc →
//    CRIU dump → archive written);
//  - archive: status.containers[].checkpointBytes;
//  - transfer (Direct): the source agent's send to the target agent, including the target's load
//    into containers-storage (its "checkpoint sent" seconds);
//  - restore: the target pod's creation → Ready (the restored process), from a pod watch here;
//  - the phases of status.phaseTimings and the message accounting (0 lost, 0 applied twice).
// A first migration per runtime (no ballast) is the cold one — image pulls on both nodes — and
// is reported apart; its RSS is the baseline the ballast adds to. Writes results.json and
// summary.md to --out; the table also goes to stdout.
//
//   node bench/checkpoint/run.ts [--rss 50,200,500] [--reps 3] [--runtimes real,simulated]
//     [--rate 10] [--wait-idle 0.7] [--out DIR]
// = npm run bench:checkpoint -- [flags]
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { REAL_CLUSTER_LATENCIES, type Latencies } from "../../sim/config.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import { sleep, waitFor } from "../../tooling/exec.ts";
import { pushProjectImages } from "../../tooling/images.ts";
import { startLocalCluster, type LocalCluster } from "../../tooling/cluster/local-cluster.ts";
import type { NodeRuntime } from "../../tooling/cluster/nodes.ts";
import { describeRuntime, runtimeVersions } from "../../tooling/cluster/runtime-info.ts";
import {
  consumerTemplate,
  containerLog,
  ControllerProcess,
  createMigration,
  createNamespace,
  deleteMigration,
  deployMs2m,
  finalAccounting,
  getMigration,
  startRegistry,
  stackEnv,
  stopper,
  SYSTEM_NS,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
  type StackEnv,
  type Workload,
} from "../../tooling/stack/index.ts";
import { median } from "../eval/stats.ts";

const { values: args } = parseArgs({
  options: {
    rss: { type: "string", default: "50,200,500" },
    reps: { type: "string", default: "3" },
    runtimes: { type: "string", default: "real,simulated" },
    rate: { type: "string", default: "10" },
    "wait-idle": { type: "string" },
    out: {
      type: "string",
      default: `bench/checkpoint/out/${new Date().toISOString().replace(/[:.]/g, "-")}`,
    },
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
const targets = args.rss.split(",").map(Number);
const reps = Number(args.reps);
const rate = Number(args.rate);
const runtimes = args.runtimes.split(",").map((r) => {
  if (r !== "real" && r !== "simulated") throw new Error(`unknown runtime ${r} (real, simulated)`);
  return r as NodeRuntime;
});
if (targets.some((t) => !(t > 0)) || !(reps >= 1) || !(rate > 0)) throw new Error("bad --rss/--reps/--rate");
const out = resolve(args.out);
mkdirSync(out, { recursive: true });

const ZERO: Latencies = {
  imagePullMs: 0,
  containerStartMs: 0,
  readinessMs: 0,
  restoreMs: 0,
  checkpointMs: 0,
};
/** One measured setting: a runtime, and for simulated nodes the latencies injected. */
interface Setting {
  key: string;
  runtime: NodeRuntime;
  latencies?: Latencies;
  label: string;
}

interface Sample {
  setting: string;
  targetMiB: number;
  ballastMiB: number;
  rep: number;
  cold: boolean;
  outcome: string;
  sourceRssMiB: number;
  targetRssMiB: number;
  archiveBytes: number;
  kubeletCheckpointS: number;
  sendS: number;
  targetLoadS: number;
  /** Target pod created → Ready (pod watch). */
  restoreS: number;
  /** Source pod created → Ready: a fresh start from the image, for comparison. */
  freshStartS: number;
  /** Ready seen after the container was seen running (0: in the same status update). */
  runningToReadyS: number;
  phases: Record<string, number>;
  totalS: number;
  published: number;
  lost: number;
  duplicated: number;
  error?: string;
}

const cleanups: (() => Promise<void>)[] = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => console.error("cleanup:", e));
}
let interrupted = false;
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write("\ninterrupted: cleaning up (Ctrl-C again to exit at once)\n");
  void cleanup().then(() => process.exit(130));
});
const log = (msg: string) => process.stderr.write(`[checkpoint-bench] ${msg}\n`);

// ---- pod timeline: when this process saw each pod added, running and Ready ----
interface PodSeen {
  added?: number;
  running?: number;
  ready?: number;
}
async function watchPods(env: StackEnv, ns: string): Promise<{ seen: Map<string, PodSeen>; stop(): void }> {
  const seen = new Map<string, PodSeen>();
  const watch = new k8s.Watch(env.kc);
  const ctl = await watch.watch(
    `/api/v1/namespaces/${ns}/pods`,
    {},
    (type: string, pod: k8s.V1Pod) => {
      const now = Date.now();
      const name = pod.metadata?.name ?? "";
      const s = seen.get(name) ?? {};
      if (type === "ADDED" || s.added === undefined) s.added ??= now;
      if (pod.status?.containerStatuses?.some((c) => c.state?.running)) s.running ??= now;
      if (pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) s.ready ??= now;
      seen.set(name, s);
    },
    () => undefined,
  );
  return { seen, stop: () => ctl.abort() };
}

// ---- RSS of a container's process ----
async function containerPid(env: StackEnv, node: string, ns: string, pod: string): Promise<number> {
  if (env.cluster.runtime === "real") {
    const p = await env.core.readNamespacedPod({ namespace: ns, name: pod });
    const id = p.status?.containerStatuses?.[0]?.containerID?.replace(/^cri-o:\/\//, "");
    if (!id) throw new Error(`${ns}/${pod} has no container ID`);
    const info = JSON.parse(await env.cluster.realNode(node).crictl(["inspect", id])) as {
      info?: { pid?: number };
    };
    if (!info.info?.pid) throw new Error(`no pid for ${id}`);
    return info.info.pid;
  }
  const status = await env.cluster.node(node).status();
  const pid = status.pods.find((x) => x.namespace === ns && x.name === pod)?.containers[0]?.pid;
  if (!pid) throw new Error(`no pid for ${ns}/${pod} on ${node}`);
  return pid;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** VmRSS once it stops growing (the ballast is written at start; a restored one is mapped in). */
async function settledRss(env: StackEnv, node: string, ns: string, pod: string): Promise<number> {
  const pid = await containerPid(env, node, ns, pod);
  let last = await rssMiB(pid);
  for (let i = 0; i < 20; i++) {
    await sleep(250);
    const now = await rssMiB(pid);
    if (Math.abs(now - last) < 1) return now;
    last = now;
  }
  return last;
}

// ---- the agents' own timings, from their logs ----
interface AgentTimes {
  checkpointS: number;
  sendS: number;
  targetLoadS: number;
}
async function agentTimes(env: StackEnv, sourceNode: string, pod: string): Promise<AgentTimes> {
  const agents = await env.core.listNamespacedPod({
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=ms2m-agent",
  });
  const agent = agents.items.find((a) => a.spec?.nodeName === sourceNode && !a.metadata?.deletionTimestamp);
  const text = await containerLog(env, SYSTEM_NS, agent?.metadata?.name ?? "", "agent", sourceNode);
  const times: AgentTimes = { checkpointS: Number.NaN, sendS: Number.NaN, targetLoadS: Number.NaN };
  for (const line of text.split("\n")) {
    if (!line.includes(`checkpoint-${pod}_`)) continue;
    let rec: { msg?: string; seconds?: number; targetLoadSeconds?: number };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if (rec.msg === "checkpoint created") times.checkpointS = rec.seconds ?? Number.NaN;
    if (rec.msg === "checkpoint sent") {
      times.sendS = rec.seconds ?? Number.NaN;
      times.targetLoadS = rec.targetLoadSeconds ?? Number.NaN;
    }
  }
  return times;
}

/** The kubelet's own pull durations (real nodes: `Pulled` events "… in 1.234s (…)"). */
async function pullSeconds(env: StackEnv, namespaces: string[]): Promise<{ image: string; s: number }[]> {
  const outList: { image: string; s: number }[] = [];
  for (const namespace of namespaces) {
    const events = await env.core.listNamespacedEvent({ namespace });
    for (const e of events.items) {
      const m = /^Successfully pulled image "([^"]+)" in ([\d.]+)(ms|s)/.exec(e.message ?? "");
      if (m) outList.push({ image: m[1]!, s: Number(m[2]) / (m[3] === "ms" ? 1000 : 1) });
    }
  }
  return outList;
}

// ---- one migration ----
async function migrateOnce(
  env: StackEnv,
  ns: string,
  work: string,
  setting: Setting,
  id: string,
  ballastMiB: number,
  meta: { targetMiB: number; rep: number; cold: boolean },
  used: { workloads: Set<string>; uids: Set<string> },
): Promise<Sample> {
  const w = workloadNames(ns, id, work);
  used.workloads.add(w.name);
  const sample: Sample = {
    setting: setting.key,
    targetMiB: meta.targetMiB,
    ballastMiB,
    rep: meta.rep,
    cold: meta.cold,
    outcome: "?",
    sourceRssMiB: Number.NaN,
    targetRssMiB: Number.NaN,
    archiveBytes: Number.NaN,
    kubeletCheckpointS: Number.NaN,
    sendS: Number.NaN,
    targetLoadS: Number.NaN,
    restoreS: Number.NaN,
    freshStartS: Number.NaN,
    runningToReadyS: Number.NaN,
    phases: {},
    totalS: Number.NaN,
    published: 0,
    lost: 0,
    duplicated: 0,
  };
  const pods = await watchPods(env, ns);
  const producer = new TestProducer(env, w, rate);
  try {
    await createBallastDeployment(env, ns, w, ballastMiB);
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const sourcePod = source?.metadata?.name ?? "";
    const seenSource = pods.seen.get(sourcePod);
    if (seenSource?.added && seenSource.ready)
      sample.freshStartS = (seenSource.ready - seenSource.added) / 1000;
    if (seenSource?.running && seenSource.ready)
      sample.runningToReadyS = (seenSource.ready - seenSource.running) / 1000;
    sample.sourceRssMiB = await settledRss(env, "node-a", ns, sourcePod);
    await producer.start();
    await sleep(2_000);
    const name = `m-${id}`;
    await createMigration(env, ns, name, w, { sourcePod, targetNode: "node-b", transferMode: "Direct" });
    let m: StatefulMigration;
    try {
      m = await waitForCompletion(env, ns, name, 600_000);
    } finally {
      const uid = (await getMigration(env, ns, name).catch(() => undefined))?.metadata?.uid;
      if (uid) used.uids.add(uid);
    }
    sample.outcome = m.status?.phase ?? "?";
    for (const t of m.status?.phaseTimings ?? [])
      if (t.durationMillis !== undefined) sample.phases[t.phase] = t.durationMillis / 1000;
    sample.totalS = Object.values(sample.phases).reduce((a, b) => a + b, 0);
    sample.archiveBytes = m.status?.containers?.[0]?.checkpointBytes ?? Number.NaN;
    const target = m.status?.targetPod ?? "";
    const seenTarget = pods.seen.get(target);
    if (seenTarget?.added && seenTarget.ready) sample.restoreS = (seenTarget.ready - seenTarget.added) / 1000;
    const a = await agentTimes(env, "node-a", sourcePod);
    sample.kubeletCheckpointS = a.checkpointS;
    sample.sendS = a.sendS;
    sample.targetLoadS = a.targetLoadS;
    sample.targetRssMiB = await settledRss(env, "node-b", ns, target).catch(() => Number.NaN);
    await sleep(1_000);
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    sample.published = report.published;
    sample.lost = report.lost.length;
    sample.duplicated = report.appliedTwice.length;
    await deleteMigration(env, ns, name).catch(() => undefined);
  } catch (err) {
    sample.outcome = "Error";
    sample.error = err instanceof Error ? err.message.split("\n")[0] : String(err);
    log(`error: ${sample.error}`);
    await producer.stop().catch(() => undefined);
  } finally {
    pods.stop();
    await env.apps.deleteNamespacedDeployment({ namespace: ns, name: w.name }).catch(() => undefined);
    await waitFor(
      `${w.name} pods gone`,
      async () => {
        const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` });
        return list.items.length === 0 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    ).catch(() => undefined);
  }
  return sample;
}

/** The reference consumer's Deployment on node-a, with BALLAST_MB MiB of written memory. */
async function createBallastDeployment(env: StackEnv, ns: string, w: Workload, mib: number): Promise<void> {
  const template = consumerTemplate(w, env, "node-a");
  const c = template.spec?.containers[0];
  if (!c) throw new Error("consumer template has no container");
  c.env = [...(c.env ?? []), { name: "BALLAST_MB", value: String(mib) }];
  await env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template },
    },
  });
}

// ---- one runtime: cluster, ms2m, the migrations ----
interface RuntimeRun {
  runtime: NodeRuntime;
  versions: string;
  /** Real nodes: the workload image as the pods name it (to find its pulls). */
  workloadImage?: string;
  baselineRssMiB: number;
  pulls: { image: string; s: number }[];
  startS: number;
}

async function runRuntime(runtime: NodeRuntime, settings: Setting[], samples: Sample[]): Promise<RuntimeRun> {
  const t0 = Date.now();
  log(`starting a local cluster with ${runtime} nodes`);
  const local: LocalCluster = await startLocalCluster({ nodes: { runtime } });
  // Newest first: the controller, the registry, then the cluster.
  const stops: (() => Promise<void>)[] = [() => local.stop()];
  const stopAll = async () => {
    for (const s of stops.splice(0)) await s().catch((e: unknown) => console.error("stop:", e));
  };
  cleanups.push(stopAll);
  const used = { workloads: new Set<string>(), uids: new Set<string>() };
  let ns = "";
  try {
    const { cluster, cp } = local;
    const env = stackEnv(cluster.info);
    const registry = await startRegistry(
      env.hostIp,
      runtime === "real" ? { dir: join(cp.dir, "registry"), pidFile: cp.pidFile } : {},
    );
    stops.unshift(() => registry.stop());
    if (runtime === "real") cluster.info.images = await pushProjectImages(env.registry);
    const work = join(out, "work", runtime);
    await mkdir(work, { recursive: true });
    const { caFile } = await deployMs2m(env, work);
    const controller = new ControllerProcess(env, work, caFile, { LOG_LEVEL: "info" });
    await controller.start();
    stops.unshift(() => controller.stop());
    ns = await createNamespace(env, "ckpt");
    const versions = describeRuntime(await runtimeVersions(env.core, runtime));
    const startS = (Date.now() - t0) / 1000;
    log(`${versions}: cluster, ms2m and controller ready in ${startS.toFixed(1)} s`);

    // The cold migration: no ballast, first pulls on both nodes; its RSS is the baseline.
    const first = settings[0]!;
    if (runtime === "simulated")
      for (const n of cluster.nodeNames()) await cluster.node(n).setLatencies(first.latencies ?? ZERO);
    log(`${first.key}: cold migration (no ballast)`);
    const cold = await migrateOnce(
      env,
      ns,
      work,
      first,
      "cold",
      0,
      { targetMiB: 0, rep: 0, cold: true },
      used,
    );
    samples.push(cold);
    const baseline = cold.sourceRssMiB;
    log(`baseline RSS ${baseline.toFixed(1)} MiB; cold total ${cold.totalS.toFixed(2)} s`);
    for (const setting of settings) {
      if (runtime === "simulated")
        for (const n of cluster.nodeNames()) await cluster.node(n).setLatencies(setting.latencies ?? ZERO);
      for (let rep = 1; rep <= reps; rep++) {
        for (const target of targets) {
          if (interrupted) break;
          const ballast = Math.max(0, Math.round(target - baseline));
          const id = `${setting.key.replace(/[^a-z0-9]/g, "")}-${target}-${rep}`.slice(0, 40);
          log(`${setting.key}: ~${target} MiB (ballast ${ballast} MiB) #${rep}`);
          const s = await migrateOnce(
            env,
            ns,
            work,
            setting,
            id,
            ballast,
            { targetMiB: target, rep, cold: false },
            used,
          );
          samples.push(s);
          log(
            `  RSS ${s.sourceRssMiB.toFixed(0)} → ${s.targetRssMiB.toFixed(0)} MiB, archive ${(s.archiveBytes / 1048576).toFixed(1)} MiB, ` +
              `kubelet checkpoint ${s.kubeletCheckpointS.toFixed(2)} s, send ${s.sendS.toFixed(2)} s, restore ${s.restoreS.toFixed(2)} s, ` +
              `total ${s.totalS.toFixed(2)} s, ${s.outcome}, lost ${s.lost}, twice ${s.duplicated}`,
          );
        }
      }
    }
    const pulls = runtime === "real" ? await pullSeconds(env, [ns, SYSTEM_NS]) : [];
    return {
      runtime,
      versions,
      ...(cluster.info.images ? { workloadImage: cluster.info.images.workload } : {}),
      baselineRssMiB: baseline,
      pulls,
      startS,
    };
  } finally {
    if (ns) {
      const gone = await deleteBrokerObjects(runMatcher(ns, used.workloads, used.uids)).catch(
        () => undefined,
      );
      if (gone) log(`broker: deleted ${gone.queues} queues, ${gone.exchanges} exchanges`);
    }
    await stopAll();
    cleanups.splice(cleanups.indexOf(stopAll), 1);
  }
}

// ---- report ----
const fin = (xs: number[]) => xs.filter((x) => Number.isFinite(x));
function cell(xs: number[], digits = 2): string {
  const v = fin(xs);
  if (v.length === 0) return "–";
  const med = median(v).toFixed(digits);
  return v.length === 1
    ? med
    : `${med} [${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)}]`;
}

function table(samples: Sample[], settings: Setting[]): string {
  const lines = [
    "| runtime | RSS target | RSS measured (MiB) | archive (MiB) | kubelet checkpoint (s) | Checkpointing phase (s) | transfer Direct, send + load (s) | Transferring phase (s) | restore: target pod created → Ready (s) | Restoring phase (s) | total (s) | RSS after restore (MiB) | runs | lost / twice |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const row = (label: string, size: string, rs: Sample[]) => {
    const ok = rs.filter((s) => s.outcome === "Completed");
    const col = (f: (s: Sample) => number, d = 2) => cell(ok.map(f), d);
    lines.push(
      `| ${label} | ${size} | ${col((s) => s.sourceRssMiB, 0)} | ${col((s) => s.archiveBytes / 1048576, 1)} | ${col((s) => s.kubeletCheckpointS)} | ${col((s) => s.phases.Checkpointing ?? Number.NaN)} | ${col((s) => s.sendS)} | ${col((s) => s.phases.Transferring ?? Number.NaN)} | ${col((s) => s.restoreS)} | ${col((s) => s.phases.Restoring ?? Number.NaN)} | ${col((s) => s.totalS)} | ${col((s) => s.targetRssMiB, 0)} | ${ok.length}/${rs.length} | ${rs.reduce((a, s) => a + s.lost, 0)} / ${rs.reduce((a, s) => a + s.duplicated, 0)} |`,
    );
  };
  for (const setting of settings) {
    const mine = samples.filter((s) => s.setting === setting.key);
    const cold = mine.filter((s) => s.cold);
    if (cold.length) row(setting.label, "cold (first migration, no ballast)", cold);
    for (const t of targets) {
      const rs = mine.filter((s) => !s.cold && s.targetMiB === t);
      const ballast = rs[0]?.ballastMiB;
      const label =
        ballast === undefined
          ? `~${t} MiB`
          : ballast > 0
            ? `~${t} MiB (+${ballast} MiB ballast)`
            : "consumer alone (no ballast)";
      row(setting.label, label, rs);
    }
  }
  return lines.join("\n");
}

/**
 * Per operation: what the simulator injects (REAL_CLUSTER_LATENCIES), what it then takes, and what
 * real nodes take at each size (medians of the warm runs).
 */
function operationsTable(samples: Sample[]): string {
  const warm = (key: string, t?: number) =>
    samples.filter(
      (s) =>
        s.setting === key && !s.cold && s.outcome === "Completed" && (t === undefined || s.targetMiB === t),
    );
  const med = (rs: Sample[], f: (s: Sample) => number, digits = 2) => {
    const v = fin(rs.map(f));
    return v.length ? median(v).toFixed(digits) : "–";
  };
  const L = REAL_CLUSTER_LATENCIES;
  const haveReal = warm("real").length > 0;
  const haveSim = warm("sim-real-latencies").length > 0;
  const realCols = haveReal ? targets.map((t) => `real, ~${t} MiB target`) : [];
  const lines = [
    `| operation | simulated: injected (REAL_CLUSTER_LATENCIES) | simulated: measured${realCols.map((c) => ` | ${c}`).join("")} |`,
    `|---|---|---${realCols.map(() => "|---").join("")}|`,
  ];
  const op = (name: string, injected: string, f: (s: Sample) => number, digits = 2) => {
    const sim = haveSim ? med(warm("sim-real-latencies"), f, digits) : "–";
    const real = haveReal ? targets.map((t) => med(warm("real", t), f, digits)) : [];
    lines.push(`| ${name} | ${injected} | ${sim}${real.map((r) => ` | ${r}`).join("")} |`);
  };
  op("process RSS (MiB)", "–", (s) => s.sourceRssMiB, 0);
  op("checkpoint archive (MiB)", "– (the state bytes only)", (s) => s.archiveBytes / 1048576, 1);
  op("kubelet checkpoint (s)", `checkpointMs ${L.checkpointMs / 1000}`, (s) => s.kubeletCheckpointS);
  op("transfer Direct: send + load (s)", "none", (s) => s.sendS);
  op(
    "restore: target pod created → Ready (s)",
    `containerStartMs + restoreMs + readinessMs = ${(L.containerStartMs + L.restoreMs + L.readinessMs) / 1000}`,
    (s) => s.restoreS,
  );
  op(
    "fresh start: source pod created → Ready (s)",
    `containerStartMs + readinessMs = ${(L.containerStartMs + L.readinessMs) / 1000}`,
    (s) => s.freshStartS,
  );
  op("migration total (s)", "–", (s) => s.totalS);
  return lines.join("\n");
}

/**
 * The simulator's latencies from these measurements (warm, smallest size: the reference consumer
 * the tests and the evaluation run): the real time of an operation less what the simulator
 * takes for it with zero latencies (its own mechanism), per constant. Not imagePullMs: no kubelet
 * pull is on this bench's warm path (Direct); bench:eval --runtime real reports the Registry
 * mode's checkpoint image pulls, the pull on a migration's path.
 */
function derive(samples: Sample[]) {
  const smallest = Math.min(...targets);
  const warm = (key: string) =>
    samples.filter(
      (s) => s.setting === key && !s.cold && s.targetMiB === smallest && s.outcome === "Completed",
    );
  const real = warm("real");
  const zero = warm("sim-zero");
  if (real.length === 0 || zero.length === 0) return undefined;
  const med = (rs: Sample[], f: (s: Sample) => number) => median(fin(rs.map(f))) * 1000;
  const readiness = Math.max(0, med(real, (s) => s.runningToReadyS) - med(zero, (s) => s.runningToReadyS));
  const start = Math.max(0, med(real, (s) => s.freshStartS) - med(zero, (s) => s.freshStartS) - readiness);
  const restore = Math.max(
    0,
    med(real, (s) => s.restoreS) - med(zero, (s) => s.restoreS) - start - readiness,
  );
  const checkpoint = Math.max(
    0,
    med(real, (s) => s.kubeletCheckpointS) - med(zero, (s) => s.kubeletCheckpointS),
  );
  const round = (ms: number) => Math.round(ms / 10) * 10;
  return {
    latencies: {
      containerStartMs: round(start),
      readinessMs: round(readiness),
      restoreMs: round(restore),
      checkpointMs: round(checkpoint),
    } satisfies Omit<Latencies, "imagePullMs">,
    from: {
      realRuns: real.length,
      simZeroRuns: zero.length,
      sizeMiB: smallest,
      realKubeletCheckpointMs: med(real, (s) => s.kubeletCheckpointS),
      simZeroKubeletCheckpointMs: med(zero, (s) => s.kubeletCheckpointS),
      realFreshStartMs: med(real, (s) => s.freshStartS),
      simZeroFreshStartMs: med(zero, (s) => s.freshStartS),
      realRunningToReadyMs: med(real, (s) => s.runningToReadyS),
      simZeroRunningToReadyMs: med(zero, (s) => s.runningToReadyS),
      realRestoreMs: med(real, (s) => s.restoreS),
      simZeroRestoreMs: med(zero, (s) => s.restoreS),
    },
  };
}

function uptimeText(): string {
  try {
    return execFileSync("uptime", { encoding: "utf8" }).trim();
  } catch {
    return `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(", ")}`;
  }
}

// ---- main ----
if (args["wait-idle"]) {
  const limit = Number(args["wait-idle"]);
  const deadline = Date.now() + 30 * 60_000;
  while (loadavg()[0]! >= limit && Date.now() < deadline) {
    log(`waiting for an idle machine: 1-min load ${loadavg()[0]!.toFixed(2)} ≥ ${limit}`);
    await sleep(30_000);
  }
}
const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "?",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  uptimeBefore: uptimeText(),
  uptimeAfter: "",
};
log(`machine: ${machine.cpus} vCPU, ${machine.memoryGiB} GiB; ${machine.uptimeBefore}`);
const settingsFor: Record<NodeRuntime, Setting[]> = {
  real: [{ key: "real", runtime: "real", label: "real" }],
  simulated: [
    {
      key: "sim-real-latencies",
      runtime: "simulated",
      latencies: REAL_CLUSTER_LATENCIES,
      label: "simulated, REAL_CLUSTER_LATENCIES",
    },
    { key: "sim-zero", runtime: "simulated", latencies: ZERO, label: "simulated, zero latencies" },
  ],
};
const samples: Sample[] = [];
const runs: RuntimeRun[] = [];
const started = Date.now();
let failed = false;
try {
  for (const rt of runtimes) runs.push(await runRuntime(rt, settingsFor[rt], samples));
} catch (err) {
  failed = true;
  console.error("bench failed:", err);
} finally {
  await cleanup();
  await rm(join(out, "work"), { recursive: true, force: true }).catch(() => undefined);
}
machine.uptimeAfter = uptimeText();
const settings = runtimes.flatMap((r) => settingsFor[r]);
const realRun = runs.find((r) => r.runtime === "real");
const derived = derive(samples);
const summary = `${table(samples, settings)}\n\nPer operation, side by side (medians of the warm runs, seconds unless said):\n\n${operationsTable(samples)}`;
const injected = (l: Omit<Latencies, "imagePullMs"> & { imagePullMs?: number }) =>
  `checkpoint ${l.checkpointMs} ms, container start ${l.containerStartMs} ms, restore ${l.restoreMs} ms, readiness ${l.readinessMs} ms` +
  (l.imagePullMs !== undefined ? `, image pull ${l.imagePullMs} ms` : "");
const text = [
  `# Checkpoint and restore vs process memory`,
  "",
  `Command: \`npm run bench:checkpoint -- ${process.argv.slice(2).join(" ")}\``,
  `Machine: ${machine.cpus} vCPU (${machine.cpuModel}), ${machine.memoryGiB} GiB; before: ${machine.uptimeBefore}; after: ${machine.uptimeAfter}`,
  ...runs.map(
    (r) =>
      `Runtime ${r.runtime}: ${r.versions}; baseline RSS ${r.baselineRssMiB.toFixed(1)} MiB; cluster + ms2m ready in ${r.startS.toFixed(1)} s`,
  ),
  `Simulated latencies injected: REAL_CLUSTER_LATENCIES = ${injected(REAL_CLUSTER_LATENCIES)}`,
  `Migrations: Deployment + ShadowPod + Direct, node-a → node-b, ${rate} msg/s; ${reps} per size; median [min–max]`,
  "",
  summary,
  "",
  ...(realRun?.pulls.length
    ? [
        `Image pulls by the real kubelets (Pulled events): ${realRun.pulls.map((p) => `${p.image.replace(/@sha256:.*/, "")} ${p.s.toFixed(2)} s`).join("; ")}`,
        "",
      ]
    : []),
  ...(derived
    ? [
        `Simulator latencies derived from this run (real − simulated with zero latencies, ~${Math.min(...targets)} MiB, warm): ${injected(derived.latencies)}`,
        "",
      ]
    : []),
].join("\n");
writeFileSync(join(out, "summary.md"), `${text}\n`);
writeFileSync(
  join(out, "results.json"),
  `${JSON.stringify({ command: `npm run bench:checkpoint -- ${process.argv.slice(2).join(" ")}`, machine, runs, injected: REAL_CLUSTER_LATENCIES, derived, samples, finishedAt: new Date().toISOString(), seconds: (Date.now() - started) / 1000 }, null, 2)}\n`,
);
console.log(text);
console.log(`results: ${join(out, "results.json")}, ${join(out, "summary.md")}`);
const bad = failed || samples.some((s) => s.outcome !== "Completed" || s.lost > 0 || s.duplicated > 0);
process.exit(bad ? 1 : 0);
