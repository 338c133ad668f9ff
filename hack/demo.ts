// `make demo`: the main job end to end on the local cluster. Brings up the cluster (`make
// cluster-up`'s supervisor: real control plane, node-a and node-b, the broker relay; the nodes
// simulated by sim/, or with --runtime=real real kubelets + CRI-O + runc + CRIU with the project's
// images in the cluster's registry), deploys ms2m from config/ (agents as the DaemonSet, the controller as its ServiceAccount, a
// registry on the bridge), runs the reference workload under a producer, applies a
// StatefulMigration, shows its phases as `kubectl get smig -w` does, and ends with a summary:
// the runtime, per-phase timings, total, the checkpoint archive's size, the consumer's downtime
// and the message accounting. --scenario=drain starts no migration itself: a MigrationPolicy
// selects the workload and `kubectl drain node-a` moves it live (the controller's eviction
// webhook), the summary adds how long the drain took.
//   node hack/demo.ts [--runtime=simulated|real] [--scenario=migrate|drain]
//                     [--strategy=ShadowPod|Sequential] [--transfer=Direct|Registry] [--rate=N] [--keep]
// Exits 1 when a message was lost or applied twice (or the migration failed), 2 on bad options.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { controlPlaneBinaries } from "../tooling/cluster/binaries.ts";
import { sleep, tryRun } from "../tooling/exec.ts";
import { mustSucceed } from "../tooling/stack/manifests.ts";
import { deleteBrokerObjects, runMatcher } from "../tooling/broker/cleanup.ts";
import { listSlotNamespaces, networkForSlot } from "../tooling/cluster/network.ts";
import type { ClusterInfo, NodeRuntime } from "../tooling/cluster/nodes.ts";
import { killGroup, pidAlive } from "../tooling/process.ts";
import { describeRuntime, runtimeVersions } from "../tooling/cluster/runtime-info.ts";
import {
  ControllerProcess,
  createDeployment,
  createNamespace,
  createStatefulSet,
  deployMs2m,
  downtime,
  finalAccounting,
  getMigration,
  readAppliedLogs,
  startRegistry,
  stackEnv,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
  type StackEnv,
} from "../tooling/stack/index.ts";
import type { StatefulMigration } from "../src/api/v1alpha1/index.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const stateDir = join(root, ".cluster");
const kubeconfig = join(stateDir, "kubeconfig");
const clusterScript = join(root, "hack", "cluster.ts");

function usage(msg?: string): never {
  if (msg) console.error(`demo: ${msg}`);
  console.error(
    "usage: node hack/demo.ts [--runtime=simulated|real] [--scenario=migrate|drain] [--strategy=ShadowPod|Sequential] [--transfer=Direct|Registry] [--rate=N] [--keep]\n" +
      "   or: make demo [RUNTIME=simulated|real] [SCENARIO=migrate|drain] [STRATEGY=ShadowPod|Sequential] [TRANSFER=Direct|Registry] [RATE=N] [KEEP=1]",
  );
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "simulated" },
    scenario: { type: "string", default: "migrate" },
    strategy: { type: "string", default: "ShadowPod" },
    transfer: { type: "string", default: "Direct" },
    rate: { type: "string", default: "20" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  allowPositionals: false,
});
if (values.help) usage();
const strategyAlias: Record<string, "ShadowPod" | "Sequential"> = {
  shadowpod: "ShadowPod",
  deployment: "ShadowPod",
  sequential: "Sequential",
  statefulset: "Sequential",
};
const strategy = strategyAlias[values.strategy.toLowerCase()] ?? usage(`unknown strategy ${values.strategy}`);
const transferModes: Record<string, "Direct" | "Registry"> = { direct: "Direct", registry: "Registry" };
const transfer =
  transferModes[values.transfer.toLowerCase()] ?? usage(`unknown transfer mode ${values.transfer}`);
const rate = Number(values.rate);
if (!Number.isFinite(rate) || rate <= 0 || rate > 2000) usage(`rate must be in (0, 2000] msg/s`);
const keep = values.keep;
const runtimes: Record<string, NodeRuntime> = { simulated: "simulated", sim: "simulated", real: "real" };
const runtime = runtimes[values.runtime.toLowerCase()] ?? usage(`unknown runtime ${values.runtime}`);
const scenarios = { migrate: "migrate", drain: "drain" } as const;
const scenario =
  scenarios[values.scenario.toLowerCase() as keyof typeof scenarios] ??
  usage(`unknown scenario ${values.scenario}`);
const workloadKind = strategy === "ShadowPod" ? "Deployment" : "StatefulSet";

const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`;
const say = (msg: string) => console.log(`${stamp()} ${msg}`);
const indent = (text: string, prefix = "           ") =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => prefix + l)
    .join("\n");

function clusterRunning(): boolean {
  const pid = Number(
    existsSync(join(stateDir, "serve.pid")) ? readFileSync(join(stateDir, "serve.pid"), "utf8") : 0,
  );
  return pid > 0 && pidAlive(pid) && existsSync(join(stateDir, "info.json"));
}

function clusterCommand(cmd: "up" | "down"): string {
  const res = spawnSync(process.execPath, [clusterScript, cmd], {
    encoding: "utf8",
    env: { ...process.env, MS2M_RUNTIME: runtime },
  });
  if (res.status !== 0) throw new Error(`cluster ${cmd} failed:\n${res.stdout}${res.stderr}`);
  return res.stdout;
}

let ownCluster = false;
let env: StackEnv | undefined;
let info: ClusterInfo | undefined;
let producer: TestProducer | undefined;
let controller: ControllerProcess | undefined;
let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
let ns: string | undefined;
let migrationUid: string | undefined;
let watcher: ReturnType<typeof spawn> | undefined;
let cleaning: Promise<void> | undefined;

/** Everything the demo made goes, unless --keep: the whole cluster if the demo started it. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    watcher?.kill("SIGTERM");
    await producer?.stop().catch(() => undefined);
    if (keep) return;
    // The broker is not the cluster's: the demo's primary queue and exchange (q.<ns>.…,
    // ex.<ns>.…) and its migration's replay and status queues are deleted there. The pods'
    // control queues expire by themselves (24 h).
    if (ns) {
      const gone = await deleteBrokerObjects(runMatcher(ns, [], migrationUid ? [migrationUid] : [])).catch(
        () => undefined,
      );
      if (gone) say(`broker: deleted the demo's ${gone.queues} queue(s) and ${gone.exchanges} exchange(s)`);
    }
    if (ownCluster) {
      say("tearing the cluster down (make cluster-down)");
      clusterCommand("down");
      if (info) {
        const left = await listSlotNamespaces(info.slot);
        const bridge = await tryRun("ip", ["link", "show", networkForSlot(info.slot).bridge]);
        const procs = [controller?.proc?.pid, registry?.pid].filter((p): p is number => !!p && pidAlive(p));
        if (left.length || bridge || procs.length) {
          console.error(
            `leftovers: namespaces [${left.join(", ")}], bridge ${bridge ? "present" : "gone"}, pids [${procs.join(", ")}]`,
          );
          process.exitCode = 1;
        } else {
          say("cleaned up: no processes, network namespaces or bridge left");
        }
      }
      return;
    }
    // A cluster from `make cluster-up`: leave it, remove the demo's parts (if it got that far).
    if (!env) return;
    await controller?.stop();
    await registry?.stop();
    if (env && ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    say(`removed the demo's namespace, controller and registry; the cluster (make cluster-up) stays`);
  })();
  return cleaning;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** Stops what an earlier demo on this cluster left running (pids it recorded), before starting anew. */
async function stopPrevious(file: string): Promise<void> {
  const prev = JSON.parse(await readFile(file, "utf8").catch(() => "{}")) as Record<string, number>;
  for (const pid of Object.values(prev)) {
    if (pid > 0 && pidAlive(pid)) {
      killGroup(pid, "SIGTERM");
      for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
      if (pidAlive(pid)) killGroup(pid, "SIGKILL");
    }
  }
}

function migrationManifest(
  name: string,
  sourcePod: string,
  queue: string,
  exchange: string,
  registryRepo: string,
) {
  return [
    "apiVersion: migration.ms2m.io/v1alpha1",
    "kind: StatefulMigration",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    `  sourcePod: ${sourcePod}`,
    "  targetNode: node-b",
    `  migrationStrategy: ${strategy}`,
    `  transferMode: ${transfer}`,
    ...(transfer === "Registry" ? [`  checkpointImageRepository: ${registryRepo}`] : []),
    "  messageQueueConfig:",
    `    queueName: ${queue}`,
    `    exchangeName: ${exchange}`,
    "    brokerSecretRef: { name: broker, key: url }",
    "",
  ].join("\n");
}

/** What the drain scenario applies: live migration for the workload's pods when evicted. */
function policyManifest(app: string, queue: string, exchange: string, registryRepo: string) {
  return [
    "apiVersion: migration.ms2m.io/v1alpha1",
    "kind: MigrationPolicy",
    "metadata:",
    `  name: ${app}`,
    "spec:",
    `  selector: { matchLabels: { app: ${app} } }`,
    `  migrationStrategy: ${strategy}`,
    `  transferMode: ${transfer}`,
    ...(transfer === "Registry" ? [`  checkpointImageRepository: ${registryRepo}`] : []),
    "  messageQueueConfig:",
    `    queueName: ${queue}`,
    `    exchangeName: ${exchange}`,
    "    brokerSecretRef: { name: broker, key: url }",
    "",
  ].join("\n");
}

const secs = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const mib = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

/** Runs a command with its output shown as the demo's (indented, time-stamped); resolves its exit code. */
function runStreaming(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const show = (d: Buffer) => {
      for (const l of d.toString().trimEnd().split("\n")) console.log(`${stamp()}   ${l}`);
    };
    child.stdout.on("data", show);
    child.stderr.on("data", show);
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  console.log(
    `ms2m demo${scenario === "drain" ? " (kubectl drain)" : ""}: ${strategy} (${workloadKind}), transfer ${transfer}, ${rate} msg/s, ${runtime} nodes, ` +
      `${keep ? "keeping the cluster afterwards" : "cleaning up afterwards"}\n`,
  );

  // 1. The cluster.
  const nodeSpec = process.env.MS2M_NODES || "2";
  const nodeCount = /^\d+$/.test(nodeSpec) ? `${nodeSpec} nodes` : nodeSpec;
  const nodesWhat =
    runtime === "real"
      ? `${nodeCount} real (kubelet + CRI-O + runc + CRIU), the project's images in its registry`
      : `${nodeCount} simulated`;
  if (clusterRunning()) {
    const running = (JSON.parse(await readFile(join(stateDir, "info.json"), "utf8")) as ClusterInfo).runtime;
    if ((running ?? "simulated") !== runtime) {
      console.error(
        `demo: the running cluster (make cluster-up) has ${running ?? "simulated"} nodes, not ${runtime}: ` +
          `run make demo RUNTIME=${running ?? "simulated"}, or make cluster-down first`,
      );
      return 2;
    }
    say("using the running cluster (make cluster-up)");
  } else {
    say(
      `starting the local cluster: control plane, ${nodesWhat} (make cluster-up RUNTIME=${runtime} NODES=${nodeSpec})`,
    );
    ownCluster = true;
    clusterCommand("up");
  }
  info = JSON.parse(await readFile(join(stateDir, "info.json"), "utf8")) as ClusterInfo;
  env = stackEnv(info);
  const e = env;
  const nodes = mustSucceed(await e.kubectl(["get", "nodes", "-o", "wide"]), "get nodes");
  say(`cluster ${info.server}, broker relay ${info.hostIp}:5672\n${indent(nodes)}`);

  // 2. ms2m from config/: CRD, RBAC, agents; the registry; the controller.
  const work = join(info.dir, "demo");
  await mkdir(work, { recursive: true });
  const procsFile = join(work, "procs.json");
  await stopPrevious(procsFile);
  const slotPids = join(info.dir, "pids"); // swept by `make cluster-down`
  registry = await startRegistry(info.hostIp, { dir: join(work, "registry"), pidFile: slotPids });
  say(`registry on ${e.registry}`);
  const { caFile } = await deployMs2m(e, work);
  say(`ms2m deployed from config/default: CRDs, RBAC, webhook, agent DaemonSet Ready on every node`);
  controller = new ControllerProcess(e, work, caFile, { LOG_LEVEL: "info" });
  controller.pidFile = slotPids;
  await controller.start();
  await writeFile(procsFile, JSON.stringify({ controller: controller.proc?.pid, registry: registry.pid }));
  say(
    `controller running as ServiceAccount ms2m-system/ms2m-controller (log: ${join(work, "controller.log")})`,
  );

  // 3. The reference workload: consumer on node-a, producer at the chosen rate.
  ns = await createNamespace(e, "demo");
  const w = workloadNames(ns, "consumer", work);
  w.appliedLogDir = join(work, `${ns}-applied`);
  // Pinned to node-a for a StatefulMigration; for a drain the scheduler must be free to place the
  // pod's replacements, so it is placed on node-a by cordoning the other nodes meanwhile.
  const pin = scenario === "migrate" ? "node-a" : undefined;
  const others = info.nodes.map((n) => n.name).filter((n) => n !== "node-a");
  if (!pin) for (const n of others) mustSucceed(await e.kubectl(["cordon", n]), `cordon ${n}`);
  if (workloadKind === "Deployment") await createDeployment(e, ns, w, pin);
  else await createStatefulSet(e, ns, w, pin);
  const [source] = await waitForConsumers(e, ns, w.name, 1);
  if (!pin) for (const n of others) mustSucceed(await e.kubectl(["uncordon", n]), `uncordon ${n}`);
  const sourcePod = source?.metadata?.name ?? "";
  const podsCols = "custom-columns=POD:.metadata.name,NODE:.spec.nodeName,STATUS:.status.phase";
  say(
    `${workloadKind} ${ns}/${w.name} consuming ${w.queue}\n` +
      indent(mustSucceed(await e.kubectl(["-n", ns, "get", "pods", "-o", podsCols]), "get pods")),
  );
  producer = new TestProducer(e, w, rate);
  await producer.start();
  say(`producer publishing ${rate} msg/s to ${w.exchange}; warming up 3 s`);
  await sleep(3_000);

  // 4. The migration, watched as a user would: applied, or started by a drain's eviction.
  const registryRepo = `${e.registry}/ms2m/checkpoints`;
  say(`kubectl -n ${ns} get smig -w`);
  const { kubeBin } = await controlPlaneBinaries();
  watcher = spawn(`${kubeBin}/kubectl`, ["-n", ns, "get", "smig", "-w"], {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    stdio: ["ignore", "pipe", "ignore"],
  });
  let watchBuf = "";
  watcher.stdout?.on("data", (d: Buffer) => {
    watchBuf += d.toString();
    const lines = watchBuf.split("\n");
    watchBuf = lines.pop() ?? "";
    for (const l of lines) console.log(`${stamp()}   ${l}`);
  });
  let name = `${w.name}-to-node-b`;
  let drainMs: number | undefined;
  let m: StatefulMigration;
  let failed: string | undefined;
  try {
    if (scenario === "migrate") {
      const manifest = migrationManifest(name, sourcePod, w.queue, w.exchange, registryRepo);
      say(`kubectl apply -f - (after ${producer.confirmed.length} messages)\n${indent(manifest)}`);
      mustSucceed(await e.kubectl(["-n", ns, "apply", "-f", "-"], manifest), "apply StatefulMigration");
    } else {
      const policy = policyManifest(w.name, w.queue, w.exchange, registryRepo);
      say(`kubectl apply -f -\n${indent(policy)}`);
      mustSucceed(await e.kubectl(["-n", ns, "apply", "-f", "-"], policy), "apply MigrationPolicy");
      say(`kubectl drain node-a --ignore-daemonsets (after ${producer.confirmed.length} messages)`);
      const drainStart = Date.now();
      const drained = await runStreaming(`${kubeBin}/kubectl`, [
        "drain",
        "node-a",
        "--ignore-daemonsets",
        "--timeout=300s",
      ]);
      drainMs = Date.now() - drainStart;
      mustSucceed(await e.kubectl(["uncordon", "node-a"]), "uncordon node-a");
      if (drained !== 0) throw new Error(`kubectl drain exited ${drained}`);
      say(`drained node-a in ${secs(drainMs)}; kubectl uncordon node-a`);
      const started = mustSucceed(
        await e.kubectl([
          "-n",
          ns,
          "get",
          "smig",
          "-l",
          "migration.ms2m.io/trigger=eviction",
          "-o",
          "jsonpath={.items[*].metadata.name}",
        ]),
        "get smig",
      )
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      if (started.length !== 1)
        throw new Error(`expected one migration started by the drain, got [${started}]`);
      name = started[0]!;
    }
    m = await waitForPhase(e, ns, name, ["Completed"], 180_000, 100);
  } catch (err) {
    failed = err instanceof Error ? err.message : String(err);
    m = (await getMigration(e, ns, name)) ?? ({} as StatefulMigration);
  }
  if (m.metadata?.uid) migrationUid = m.metadata.uid;
  await sleep(500);
  watcher.kill("SIGTERM");
  if (failed) {
    console.error(`\nmigration did not complete: ${failed}`);
    console.error(indent(await controller.log().then((l) => l.split("\n").slice(-30).join("\n"))));
    return 1;
  }
  say(
    `after the migration\n` +
      indent(mustSucceed(await e.kubectl(["-n", ns, "get", "pods", "-o", podsCols]), "get pods")),
  );
  say("producer keeps publishing 3 s more");
  await sleep(3_000);

  // 5. Accounting: stop the producer, let the consumer drain, stop it (it writes its state).
  const producerStop = Date.now();
  say("stopping the producer and the consumer for the accounting");
  const report = await finalAccounting(
    e,
    ns,
    w,
    producer,
    stopper(e, ns, workloadKind === "Deployment" ? "deploy" : "sts", w.name),
  );
  const applied = await readAppliedLogs(w.appliedLogDir);
  const started = Date.parse(String(m.status?.startTime ?? m.metadata?.creationTimestamp ?? ""));
  const completed = Date.parse(m.status?.completionTime ?? "");
  const dt = downtime(applied, started, producerStop);
  const timings = m.status?.phaseTimings ?? [];
  const inPhases = timings
    .filter((t) => {
      const s = Date.parse(t.startTime);
      const end = s + (t.durationMillis ?? 0);
      return s < dt.gapEnd && end > dt.gapStart;
    })
    .map((t) => t.phase);
  const during = applied.filter((x) => x.at >= started && x.at <= completed).length;

  // 6. Summary.
  const rel = (t: number) => `+${((t - started) / 1000).toFixed(3)} s`;
  const maxMs = Math.max(1, ...timings.map((t) => t.durationMillis ?? 0));
  console.log(`\n=== ${name}: ${m.status?.phase} (${m.status?.strategy}, ${m.status?.transferMode}) ===`);
  console.log(`runtime: ${describeRuntime(await runtimeVersions(e.core, runtime))}`);
  console.log(
    `source ${m.status?.sourceNode}/${sourcePod} -> target ${m.status?.targetNode}/${m.status?.targetPod ?? "?"}`,
  );
  for (const c of m.status?.containers ?? []) {
    console.log(
      `checkpoint archive of ${c.name}: ${c.checkpointBytes !== undefined ? mib(c.checkpointBytes) : "?"}` +
        (c.checkpointBytes !== undefined ? ` (${c.checkpointBytes} bytes)` : ""),
    );
  }
  console.log("\nphase timings");
  for (const t of timings) {
    const ms = t.durationMillis ?? 0;
    const bar = "█".repeat(Math.max(ms > 0 ? 1 : 0, Math.round((ms / maxMs) * 30)));
    console.log(`  ${t.phase.padEnd(14)} ${secs(ms).padStart(10)}  ${bar}`);
  }
  console.log(
    `  ${"total".padEnd(14)} ${secs(completed - started).padStart(10)}  (status.duration ${m.status?.duration})`,
  );
  if (drainMs !== undefined) console.log(`  ${"kubectl drain".padEnd(14)} ${secs(drainMs).padStart(10)}`);
  console.log("\nconsumer downtime (longest gap in message processing, migration start to producer stop)");
  console.log(
    `  ${secs(dt.gapMs)} from ${rel(dt.gapStart)} to ${rel(dt.gapEnd)}` +
      (inPhases.length ? ` (during ${inPhases.join(" -> ")})` : "") +
      `; a message every ${secs(dt.normalGapMs)} before the migration (median)`,
  );
  console.log(`  ${during} messages applied while the migration ran (source, then target)`);
  console.log("\nmessage accounting");
  console.log(`  published (confirmed by the broker) ${report.published}`);
  console.log(`  processed                           ${report.processed}`);
  console.log(
    `  lost                                ${report.lost.length}${report.lost.length ? `  ${report.lost.slice(0, 20).join(",")}` : ""}`,
  );
  console.log(
    `  applied twice                       ${report.appliedTwice.length}${report.appliedTwice.length ? `  ${report.appliedTwice.slice(0, 20).join(",")}` : ""}`,
  );
  console.log(`  state checksum                      ${report.checksumOk ? "ok" : "MISMATCH"}`);
  const ok = report.ok && m.status?.phase === "Completed";
  console.log(`\n${ok ? "OK: zero lost, zero applied twice" : "FAILED: messages lost or applied twice"}`);
  if (keep) {
    console.log(
      `\nthe cluster keeps running (the workload is scaled to 0 after the accounting):\n` +
        `  export KUBECONFIG=${kubeconfig}\n` +
        `  kubectl -n ${ns} get smig ${name} -o yaml\n` +
        `  kubectl -n ${ns} scale ${workloadKind.toLowerCase()}/${w.name} --replicas=1\n` +
        `  make cluster-down    # removes everything\n` +
        `kubectl is ${kubeBin}/kubectl`,
    );
  }
  return ok ? 0 : 1;
}

let code: number;
try {
  code = await main();
} catch (err) {
  console.error(`\ndemo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (controller)
    console.error(indent(await controller.log().then((l) => l.split("\n").slice(-20).join("\n"))));
  code = 1;
}
await cleanup().catch((err: unknown) => {
  console.error("cleanup failed:", err);
  code = 1;
});
say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(process.exitCode && process.exitCode !== 0 ? process.exitCode : code);
