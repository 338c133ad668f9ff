// Evaluation harness: the seed publication's evaluation (three configurations × message rates ×
// repetitions), on a local cluster started here the way the tests start it — simulated nodes
// (default, --runtime simulated: sim/ with --latencies) or real ones (--runtime real: kubelet +
// CRI-O + runc + CRIU, the project's images in the cluster's registry) — or on any cluster with
// ms2m deployed (--kubeconfig). Writes a CSV per migration run, one results.csv, summary.md and
// SVG plots to --out, each saying which runtime produced it. Progress on stderr, summary on stdout.
//
//   node bench/eval/run.ts [--runtime simulated|real]
//     [--configs sts-seq-registry,deploy-shadow-registry,deploy-shadow-direct]
//     [--rates 1,4,7,10,13,16,19] [--reps 3] [--latencies real|zero] [--warmup 3] [--out DIR]
//     [--kubeconfig FILE --namespace NS --source-node N --target-node N --broker-url URL
//      --producer-url URL --consumer-image IMG --checkpoint-repo REPO
//      --consumer-state auto|files|termination-message]
// --consumer-state (kubeconfig only): where the consumers' final states are read. auto: from their
// files when the nodes are simulated (they run here), from termination messages otherwise;
// termination-message forces the path a cluster of real nodes takes, on any nodes.
// --latencies applies to simulated nodes only (real nodes take what they take).
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { REAL_CLUSTER_LATENCIES, type Latencies } from "../../sim/config.ts";
import { controlPlaneBinaries } from "../../tooling/cluster/binaries.ts";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { pushProjectImages } from "../../tooling/images.ts";
import { describeRuntime, runtimeVersions } from "../../tooling/cluster/runtime-info.ts";
import { sleep, waitFor } from "../../tooling/exec.ts";
import type { NodeRuntime, TestCluster } from "../../tooling/cluster/nodes.ts";
import {
  ControllerProcess,
  consumerTemplate,
  deployMs2m,
  finalAccounting,
  getMigration,
  createMigration,
  deleteMigration,
  prepareWorkloadNamespace,
  REGISTRY_PORT,
  startRegistry,
  stopper,
  TestProducer,
  waitForConsumers,
  workloadNames,
  type ControllerTestEnv,
  type Workload,
} from "../../tooling/stack/index.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";
import { Producer } from "../../workload/producer.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import type { AccountingReport } from "../../workload/accounting.ts";
import { remoteAccounting, stateToTerminationMessage } from "./remote-state.ts";
import { boxPlot, stackedBars } from "./svg.ts";
import { downtimeMs, median } from "./stats.ts";

const CONFIGS = {
  "sts-seq-registry": {
    kind: "sts",
    strategy: "Sequential",
    mode: "Registry",
    label: "StatefulSet + Sequential + Registry",
  },
  "deploy-shadow-registry": {
    kind: "deploy",
    strategy: "ShadowPod",
    mode: "Registry",
    label: "Deployment + ShadowPod + Registry",
  },
  "deploy-shadow-direct": {
    kind: "deploy",
    strategy: "ShadowPod",
    mode: "Direct",
    label: "Deployment + ShadowPod + Direct",
  },
} as const;
type ConfigName = keyof typeof CONFIGS;
const PHASES = ["Pending", "Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing"];

const { values: args } = parseArgs({
  options: {
    runtime: { type: "string", default: "simulated" },
    configs: { type: "string", default: Object.keys(CONFIGS).join(",") },
    rates: { type: "string", default: "1,4,7,10,13,16,19" },
    reps: { type: "string", default: "3" },
    latencies: { type: "string", default: "real" },
    warmup: { type: "string", default: "3" },
    out: { type: "string", default: `bench/eval/out/${new Date().toISOString().replace(/[:.]/g, "-")}` },
    "timeout-s": { type: "string", default: "180" },
    kubeconfig: { type: "string" },
    namespace: { type: "string", default: "ms2m-eval" },
    "source-node": { type: "string", default: "node-a" },
    "target-node": { type: "string", default: "node-b" },
    "broker-url": { type: "string" },
    "producer-url": { type: "string" },
    "consumer-image": { type: "string", default: "ghcr.io/ms2m/ms2m-workload:0.1.0" },
    "checkpoint-repo": { type: "string" },
    "consumer-state": { type: "string", default: "auto" },
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
const configs = args.configs.split(",").map((c) => {
  if (!(c in CONFIGS))
    throw new Error(`unknown configuration ${c} (have ${Object.keys(CONFIGS).join(", ")})`);
  return c as ConfigName;
});
const rates = args.rates.split(",").map(Number);
const reps = Number(args.reps);
const latencies: Latencies =
  args.latencies === "zero"
    ? { imagePullMs: 0, containerStartMs: 0, readinessMs: 0, restoreMs: 0, checkpointMs: 0 }
    : args.latencies === "real"
      ? REAL_CLUSTER_LATENCIES
      : (JSON.parse(args.latencies) as Latencies);
const out = resolve(args.out);
mkdirSync(join(out, "runs"), { recursive: true });
const remote = args.kubeconfig !== undefined;
if (args.runtime !== "simulated" && args.runtime !== "real")
  throw new Error(`--runtime must be simulated or real (got ${args.runtime})`);
const runtime: NodeRuntime = args.runtime;
if (!["auto", "files", "termination-message"].includes(args["consumer-state"]))
  throw new Error(
    `--consumer-state must be auto, files or termination-message (got ${args["consumer-state"]})`,
  );
if (!remote && args["consumer-state"] !== "auto")
  throw new Error("--consumer-state applies to --kubeconfig only (a local cluster reads the files)");
if (remote && runtime === "real")
  throw new Error("--runtime real starts a local cluster: not with --kubeconfig");
/** The CSV's runtime column: what ran the nodes. */
const runtimeTag = remote ? "remote" : runtime;
/** Said in summary.md, the plots and on stdout (set once the cluster is up). */
let runtimeText = runtimeTag;
/**
 * Whether the consumers' files (final states, applied-message logs) are on this machine: a local
 * cluster, or a remote one whose nodes are simulated (they run containers here; kernelVersion
 * "ms2m-sim"). Otherwise the states come back as termination messages and downtime is not
 * measured.
 */
let filesHere = !remote;

interface Row {
  config: ConfigName;
  rate: number;
  rep: number;
  outcome: string;
  phases: Record<string, number>;
  totalS: number;
  /** Undefined on a remote cluster of real nodes: its consumers log no per-message times here. */
  downtimeS: number | undefined;
  published: number;
  processed: number;
  lost: number;
  duplicated: number;
  /** The consumer's checksum agrees with the sequence numbers it applied (undefined: not measured). */
  checksumOk?: boolean;
  error?: string;
}

// ---- the environment: local simulated cluster, or a kubeconfig ----
const cleanups: (() => Promise<void>)[] = [];
let stopping = false;
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => console.error("cleanup:", e));
}
process.on("SIGINT", () => {
  if (stopping) process.exit(130);
  stopping = true;
  process.stderr.write("\ninterrupted: cleaning up (Ctrl-C again to exit at once)\n");
  void cleanup().then(() => process.exit(130));
});

function kubectlWith(kubeconfig: string) {
  return async (argv: string[], input?: string) => {
    const bin = remote ? "kubectl" : `${(await controlPlaneBinaries()).kubeBin}/kubectl`;
    return new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      const child = execFile(
        bin,
        argv,
        { env: { ...process.env, KUBECONFIG: kubeconfig }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) =>
          res({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(input);
    });
  };
}

async function localEnv(work: string): Promise<ControllerTestEnv> {
  const t0 = Date.now();
  process.stderr.write(`starting the local control plane and two ${runtime} nodes…\n`);
  const local = await startLocalCluster({ nodes: { runtime } });
  cleanups.push(() => local.stop());
  const { cluster, cp } = local;
  const env = makeEnv(cluster.info.kubeconfig, cluster, cluster.info.hostIp);
  // Real nodes pull the project's images from the cluster's registry (built if needed, pushed).
  const registry = await startRegistry(
    env.hostIp,
    runtime === "real" ? { dir: join(cp.dir, "registry"), pidFile: cp.pidFile } : {},
  );
  cleanups.push(() => registry.stop());
  if (runtime === "real") cluster.info.images = await pushProjectImages(env.registry);
  const { caFile } = await deployMs2m(env, work);
  const controller = new ControllerProcess(env, work, caFile, { LOG_LEVEL: "info" });
  await controller.start();
  cleanups.push(() => controller.stop());
  if (runtime === "simulated")
    for (const n of cluster.nodeNames()) await cluster.node(n).setLatencies(latencies);
  const versions = describeRuntime(await runtimeVersions(env.core, runtime));
  runtimeText =
    runtime === "simulated"
      ? `${versions}, latencies ${args.latencies === "real" ? "REAL_CLUSTER_LATENCIES " : ""}${JSON.stringify(latencies)}`
      : versions;
  process.stderr.write(`cluster, ms2m and controller ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  process.stderr.write(`runtime: ${runtimeText}\n`);
  return env;
}

function makeEnv(kubeconfig: string, cluster: TestCluster | undefined, hostIp: string): ControllerTestEnv {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const kubectl = kubectlWith(kubeconfig);
  return {
    cluster: cluster as TestCluster,
    kubeConfig: () => kc,
    kubectl,
    kubectlWithToken: () => Promise.reject(new Error("not available")),
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    hostIp,
    brokerUrl: args["broker-url"] ?? `amqp://guest:guest@${hostIp}:5672`,
    registry: `${hostIp}:${REGISTRY_PORT}`,
  } as unknown as ControllerTestEnv;
}

// ---- one migration run ----
/** The reference producer against a remote broker (--producer-url). */
class RemoteProducer {
  readonly confirmed: number[] = [];
  readonly producer: Producer;
  constructor(w: Workload, rate: number) {
    this.producer = new Producer({
      url: args["producer-url"] ?? "amqp://guest:guest@127.0.0.1:5672",
      exchange: w.exchange,
      rate,
      producerId: w.name,
      onConfirmed: (seq) => this.confirmed.push(seq),
    });
  }
  start(): Promise<void> {
    return this.producer.start();
  }
  async stop(): Promise<void> {
    await this.producer.stop();
  }
}

async function createWorkload(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  kind: "sts" | "deploy",
  appliedDir: string,
) {
  // Real nodes: the folder is a hostPath volume (consumerTemplate mounts appliedLogDir) and the
  // consumer writes <pod>.applied there, named after the pod it runs in at that moment.
  const template = consumerTemplate(
    runtime === "real" ? { ...w, appliedLogDir: appliedDir } : w,
    // A cluster reached by kubeconfig has no local handle: the template's `runtime === "real"`
    // choices (hostPath folders, the project's image) are not for it.
    remote ? { ...env, cluster: { runtime: "simulated" } as TestCluster } : env,
    args["source-node"],
  );
  const c = template.spec?.containers[0];
  if (!c) throw new Error("no container");
  if (runtime !== "real")
    c.env = [...(c.env ?? []), { name: "APPLIED_LOG", value: `${appliedDir}/$(POD_NAME).log` }];
  if (remote) c.image = args["consumer-image"];
  if (!filesHere) stateToTerminationMessage(c);
  const metadata = { name: w.name };
  const selector = { matchLabels: { app: w.name } };
  if (kind === "sts") {
    await env.apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata,
        spec: { replicas: 1, serviceName: w.name, podManagementPolicy: "Parallel", selector, template },
      },
    });
  } else {
    await env.apps.createNamespacedDeployment({
      namespace: ns,
      body: { metadata, spec: { replicas: 1, selector, template } },
    });
  }
}

async function appliedTimes(dir: string): Promise<number[]> {
  // <pod>.log (APPLIED_LOG, simulated nodes) or <pod>.applied (APPLIED_LOG_DIR, real nodes).
  const files = (await readdir(dir).catch(() => [] as string[])).filter(
    (f) => f.endsWith(".log") || f.endsWith(".applied"),
  );
  const out: number[] = [];
  for (const f of files) {
    for (const line of (await readFile(join(dir, f), "utf8")).split("\n")) {
      const t = Number(line.split(" ")[0]);
      if (line && Number.isFinite(t)) out.push(t);
    }
  }
  return out;
}

async function waitDone(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  timeoutMs: number,
): Promise<StatefulMigration> {
  return waitFor(
    `migration ${name} done`,
    async () => {
      const m = await getMigration(env, ns, name).catch(() => undefined);
      return m && ["Completed", "Failed"].includes(m.status?.phase ?? "") ? m : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

async function runOnce(
  env: ControllerTestEnv,
  ns: string,
  work: string,
  config: ConfigName,
  rate: number,
  rep: number,
): Promise<Row> {
  const c = CONFIGS[config];
  const short = { "sts-seq-registry": "seq", "deploy-shadow-registry": "shr", "deploy-shadow-direct": "shd" }[
    config
  ];
  const id = `${short}-r${rate}-n${rep}`;
  const w = workloadNames(ns, id, work, c.kind === "sts");
  usedWorkloads.add(w.name);
  const appliedDir = join(work, "applied", id);
  await mkdir(appliedDir, { recursive: true });
  const row: Row = {
    config,
    rate,
    rep,
    outcome: "?",
    phases: {},
    totalS: 0,
    downtimeS: 0,
    published: 0,
    processed: 0,
    lost: 0,
    duplicated: 0,
  };
  const producer = remote ? new RemoteProducer(w, rate) : new TestProducer(env, w, rate);
  try {
    await createWorkload(env, ns, w, c.kind, appliedDir);
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const sourcePod = source?.metadata?.name ?? "";
    await producer.start();
    await sleep(Number(args.warmup) * 1000);
    const from = Date.now();
    await createMigration(
      env,
      ns,
      `m-${id}`,
      c.kind === "sts" ? { ...w, queue: `${w.queue}.${sourcePod}` } : w,
      {
        sourcePod,
        targetNode: args["target-node"],
        migrationStrategy: c.strategy,
        transferMode: c.mode,
        ...(args["checkpoint-repo"] ? { checkpointImageRepository: args["checkpoint-repo"] } : {}),
      },
    );
    const m = await waitDone(env, ns, `m-${id}`, Number(args["timeout-s"]) * 1000);
    if (m.metadata?.uid) usedUids.add(m.metadata.uid);
    const to = Date.now();
    row.outcome =
      m.status?.phase === "Completed" ? "Completed" : `Failed(${m.status?.failure?.reason ?? "?"})`;
    for (const t of m.status?.phaseTimings ?? [])
      if (t.durationMillis !== undefined) row.phases[t.phase] = t.durationMillis / 1000;
    row.totalS = Object.values(row.phases).reduce((a, b) => a + b, 0);
    await sleep(1_000);
    // The consumers append each applied message's time to a file here (local cluster only).
    row.downtimeS = filesHere ? downtimeMs(await appliedTimes(appliedDir), from, to, rate) / 1000 : undefined;
    // Both modes account from the consumers' own final states (lost, applied twice, checksum):
    // their state files where they are here, else their termination messages.
    const onlyPod = c.kind === "sts" ? `${w.name}-0` : undefined;
    const stopAll = stopper(env, ns, c.kind, w.name);
    let report: AccountingReport;
    if (filesHere) {
      report = await finalAccounting(env, ns, w, producer as TestProducer, stopAll, onlyPod);
    } else {
      await producer.stop();
      await sleep(3_000); // what is still queued reaches the consumer (finalAccounting waits too)
      report = await remoteAccounting(env, ns, w, producer.confirmed, stopAll, onlyPod);
    }
    row.published = report.published;
    row.processed = report.processed;
    row.lost = report.lost.length;
    row.duplicated = report.appliedTwice.length;
    row.checksumOk = report.checksumOk;
    await deleteMigration(env, ns, `m-${id}`).catch(() => undefined);
  } catch (err) {
    row.outcome = "Error";
    row.error = err instanceof Error ? err.message.split("\n")[0] : String(err);
    await producer.stop().catch(() => undefined);
  } finally {
    await env.apps.deleteNamespacedDeployment({ namespace: ns, name: w.name }).catch(() => undefined);
    await env.apps.deleteNamespacedStatefulSet({ namespace: ns, name: w.name }).catch(() => undefined);
    await rm(appliedDir, { recursive: true, force: true });
  }
  writeFileSync(join(out, "runs", `${config}-rate${rate}-rep${rep}.csv`), `${CSV_HEADER}\n${csvLine(row)}\n`);
  return row;
}

const CSV_HEADER = [
  "runtime",
  "config",
  "rate",
  "rep",
  "outcome",
  ...PHASES.map((p) => `${p.toLowerCase()}_s`),
  "total_s",
  "downtime_s",
  "published",
  "processed",
  "lost",
  "duplicated",
  "checksum_ok",
  "error",
].join(",");
function csvLine(r: Row): string {
  const f = (n: number | undefined) => (n === undefined ? "" : n.toFixed(3));
  return [
    runtimeTag,
    r.config,
    r.rate,
    r.rep,
    r.outcome,
    ...PHASES.map((p) => f(r.phases[p])),
    f(r.totalS),
    f(r.downtimeS),
    r.published,
    r.processed,
    r.lost,
    r.duplicated,
    r.checksumOk === undefined ? "" : String(r.checksumOk),
    JSON.stringify(r.error ?? ""),
  ].join(",");
}

// ---- progress, summary, plots ----
function progress(done: number, total: number, startedAt: number, what: string): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const elapsed = (Date.now() - startedAt) / 1000;
  const eta = done > 0 ? (elapsed / done) * (total - done) : 0;
  process.stderr.write(
    `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} ${elapsed.toFixed(0)}s elapsed, ~${eta.toFixed(0)}s left  ${what.padEnd(40)}`,
  );
}

function summarize(rows: Row[]): string {
  const lines = [
    "| configuration | rate (msg/s) | runs | checkpoint | transfer | restore | replay | finalize | total (median) | downtime (median) | published | lost | duplicated | checksum |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const config of configs) {
    for (const rate of rates) {
      const rs = rows.filter((r) => r.config === config && r.rate === rate);
      const ok = rs.filter((r) => r.outcome === "Completed");
      const med = (p: string) => median(ok.map((r) => r.phases[p] ?? 0)).toFixed(2);
      const sum = (k: "published" | "lost" | "duplicated") => rs.reduce((a, r) => a + r[k], 0);
      const measured = rs.filter((r) => r.checksumOk !== undefined);
      const checksum = `${measured.filter((r) => r.checksumOk).length}/${measured.length} ok`;
      lines.push(
        `| ${CONFIGS[config].label} | ${rate} | ${ok.length}/${rs.length} | ${med("Checkpointing")} | ${med("Transferring")} | ${med("Restoring")} | ${med("Replaying")} | ${med("Finalizing")} | ${median(ok.map((r) => r.totalS)).toFixed(2)} s | ${filesHere ? `${median(ok.map((r) => r.downtimeS ?? Number.NaN)).toFixed(2)} s` : "–"} | ${sum("published")} | ${sum("lost")} | ${sum("duplicated")} | ${checksum} |`,
      );
    }
  }
  return lines.join("\n");
}

function plots(rows: Row[]): void {
  const ok = rows.filter((r) => r.outcome === "Completed");
  writeFileSync(
    join(out, "total-boxplot.svg"),
    boxPlot({
      title: "Total migration time per configuration and message rate",
      subtitle: `runtime: ${runtimeText}`,
      yLabel: "total migration time (s)",
      xLabel: "message rate (msg/s)",
      groups: rates.map(String),
      series: configs.map((c) => ({
        name: CONFIGS[c].label,
        values: rates.map((rate) => ok.filter((r) => r.config === c && r.rate === rate).map((r) => r.totalS)),
      })),
    }),
  );
  const segments = PHASES;
  writeFileSync(
    join(out, "phases-stacked.svg"),
    stackedBars({
      title: "Median phase durations per configuration (all rates)",
      subtitle: `runtime: ${runtimeText}`,
      xLabel: "seconds",
      segments,
      rows: configs.map((c) => ({
        name: CONFIGS[c].label,
        values: segments.map(
          (p) => median(ok.filter((r) => r.config === c).map((r) => r.phases[p] ?? 0)) || 0,
        ),
      })),
    }),
  );
}

/**
 * The kubelets' pull times on real nodes, from their Pulled events ("Successfully pulled image
 * … in 1.234s …"): the checkpoint images of Registry mode (pulled by the target's kubelet in
 * Restoring) apart from the others.
 */
async function kubeletPulls(env: ControllerTestEnv, ns: string): Promise<string> {
  const pulls: { image: string; s: number }[] = [];
  for (const namespace of [ns, "ms2m-system"]) {
    const events = await env.core.listNamespacedEvent({ namespace }).catch(() => ({ items: [] }));
    for (const e of events.items as k8s.CoreV1Event[]) {
      const m = /^Successfully pulled image "([^"]+)" in ([\d.]+)(ms|s)/.exec(e.message ?? "");
      if (m) pulls.push({ image: m[1]!, s: Number(m[2]) / (m[3] === "ms" ? 1000 : 1) });
    }
  }
  const describe = (what: string, xs: number[]) =>
    xs.length
      ? `${what}: median ${median(xs).toFixed(2)} s [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}], ${xs.length} pulls`
      : `${what}: none`;
  const isCheckpoint = (image: string) => image.includes("/ms2m/checkpoints:");
  return [
    "kubelet image pulls (Pulled events):",
    `- ${describe(
      "checkpoint images (Registry mode, target node, Restoring)",
      pulls.filter((p) => isCheckpoint(p.image)).map((p) => p.s),
    )}`,
    `- ${describe(
      "project images (workload, agent; first use on a node)",
      pulls.filter((p) => !isCheckpoint(p.image)).map((p) => p.s),
    )}`,
  ].join("\n");
}

// ---- main ----
/** What the run made on the shared broker, removed at the end (local runs: 127.0.0.1:5672). */
const usedWorkloads = new Set<string>();
const usedUids = new Set<string>();
let runNamespace = "";
const work = resolve(join(out, "work"));
await mkdir(work, { recursive: true });
const rows: Row[] = [];
/** Real nodes: the kubelets' own image pull times (their Pulled events), said in summary.md. */
let pullText = "";
try {
  let env: ControllerTestEnv;
  let ns: string;
  if (remote) {
    env = makeEnv(resolve(args.kubeconfig!), undefined, "");
    ns = args.namespace;
    await prepareWorkloadNamespace(env, ns);
    const source = await env.core.readNode({ name: args["source-node"] });
    const simulated = source.status?.nodeInfo?.kernelVersion === "ms2m-sim";
    filesHere = args["consumer-state"] === "auto" ? simulated : args["consumer-state"] === "files";
    if (filesHere && !simulated)
      throw new Error("--consumer-state files needs simulated nodes: real nodes keep the files on the node");
    process.stderr.write(
      filesHere
        ? "simulated nodes (containers run on this machine): the consumers' files are read here\n"
        : "the consumers' final states come back as their termination messages\n",
    );
  } else {
    env = await localEnv(work);
    const { createNamespace } = await import("../../tooling/stack/index.ts");
    ns = await createNamespace(env, "eval");
  }
  runNamespace = ns;
  const total = configs.length * rates.length * reps;
  const startedAt = Date.now();
  progress(0, total, startedAt, "");
  for (let rep = 1; rep <= reps; rep++) {
    for (const rate of rates) {
      for (const config of configs) {
        if (stopping) break;
        progress(rows.length, total, startedAt, `${config} @${rate} msg/s #${rep}`);
        rows.push(await runOnce(env, ns, work, config, rate, rep));
      }
    }
  }
  progress(rows.length, total, startedAt, "done");
  process.stderr.write("\n");
  if (runtime === "real" && !remote) pullText = await kubeletPulls(env, ns);
} finally {
  writeFileSync(join(out, "results.csv"), `${CSV_HEADER}\n${rows.map(csvLine).join("\n")}\n`);
  if (rows.length) {
    plots(rows);
    const summary = summarize(rows);
    const latText = remote
      ? `remote cluster ${args.kubeconfig} (its own latencies; ${filesHere ? "simulated nodes: downtime, lost, duplicated and checksum from the consumers' files, as locally" : "downtime not measured (the consumers' per-message times stay on their nodes); lost, duplicated and checksum from the consumers' final states, read from their termination messages"})`
      : `runtime: ${runtimeText}`;
    const extra = pullText ? `\n${pullText}\n` : "";
    writeFileSync(join(out, "summary.md"), `runtime: ${runtimeTag}\n\n${summary}\n\n${latText}\n${extra}`);
    console.log(`runtime: ${runtimeTag}\n`);
    console.log(summary);
    console.log(latText + extra);
    const errors = rows.filter((r) => r.error);
    for (const e of errors) console.log(`error: ${e.config} @${e.rate} #${e.rep}: ${e.error}`);
    console.log(
      `\nCSV: ${join(out, "results.csv")} (and runs/), plots: ${join(out, "total-boxplot.svg")}, ${join(out, "phases-stacked.svg")}`,
    );
  }
  await rm(work, { recursive: true, force: true }).catch(() => undefined);
  await cleanup();
  if (!remote && runNamespace) {
    const gone = await deleteBrokerObjects(runMatcher(runNamespace, usedWorkloads, usedUids)).catch(
      (err: unknown) => (console.error("broker cleanup:", err), { queues: 0, exchanges: 0 }),
    );
    process.stderr.write(
      `broker: deleted ${gone.queues} queues and ${gone.exchanges} exchanges of this run\n`,
    );
  }
}
// Zero lost, zero applied twice, every checksum right: the bar, in both modes.
const bad = rows.some(
  (r) => r.lost > 0 || r.duplicated > 0 || r.checksumOk === false || r.outcome !== "Completed",
);
process.exit(bad ? 1 : 0);
