// `make cluster-up` / `make cluster-down`: a local cluster for humans, with the admin
// kubeconfig at .cluster/kubeconfig. `up` starts a detached supervisor (`serve`) that owns
// the cluster and tears it down on SIGTERM; `down` signals it and waits.
import { spawn } from "node:child_process";
import { copyFile, mkdir, open, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { ControlPlane } from "../tooling/cluster/control-plane.ts";
import { TestCluster } from "../tooling/cluster/nodes.ts";
import { sleep } from "../tooling/exec.ts";
import { pidAlive } from "../tooling/process.ts";
import { pushProjectImages } from "../tooling/images.ts";
import { REGISTRY_PORT, startRegistry } from "../tooling/stack/index.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const stateDir = join(root, ".cluster");
const kubeconfigPath = join(stateDir, "kubeconfig");
/** The running cluster's ClusterInfo (slot, addresses, nodes), for `make demo` and tools. */
const infoPath = join(stateDir, "info.json");
const pidPath = join(stateDir, "serve.pid");
const logPath = join(stateDir, "cluster.log");

async function servePid(): Promise<number | undefined> {
  const pid = Number(await readFile(pidPath, "utf8").catch(() => ""));
  return pid > 0 && pidAlive(pid) ? pid : undefined;
}

async function up(): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const running = await servePid();
  if (running) {
    console.log(`cluster already running (pid ${running}); kubeconfig: ${kubeconfigPath}`);
    return;
  }
  await rm(kubeconfigPath, { force: true });
  const log = await open(logPath, "w");
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "serve"], {
    detached: true,
    stdio: ["ignore", log.fd, log.fd],
  });
  await log.close();
  child.unref();
  const started = Date.now();
  while (!existsSync(kubeconfigPath)) {
    if (child.exitCode !== null || (child.pid && !pidAlive(child.pid))) {
      console.error(await readFile(logPath, "utf8"));
      throw new Error("cluster failed to start (log above)");
    }
    if (Date.now() - started > 15 * 60_000) throw new Error(`cluster did not start; see ${logPath}`);
    await sleep(200);
  }
  console.log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`  export KUBECONFIG=${kubeconfigPath}`);
}

async function serve(): Promise<void> {
  const { writeFile } = await import("node:fs/promises");
  await writeFile(pidPath, String(process.pid));
  const cp = await ControlPlane.start({ ownerPid: process.pid });
  let cluster: TestCluster | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await rm(kubeconfigPath, { force: true });
    await rm(infoPath, { force: true });
    // Nodes first (their containers with them), then the control plane sweeps the slot.
    await cluster?.stop().catch((err: unknown) => console.error("stopping nodes:", err));
    await cp.stop();
    await rm(pidPath, { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  // Two workers (MS2M_NODES=3 for node-a..node-c, or a list of names), registered and Ready:
  // simulated, or real (MS2M_RUNTIME=real: kubelet + CRI-O + runc + CRIU each) with the cluster's
  // registry holding the project's images, which real nodes pull.
  const nodes = nodeNames(process.env.MS2M_NODES || undefined);
  const runtime = process.env.MS2M_RUNTIME === "real" ? "real" : "simulated";
  try {
    cluster = await TestCluster.start(cp.clusterInfo, { nodes, runtime });
    // The cluster's registry (Registry transfers push checkpoint images to it on either runtime).
    await startRegistry(cp.net.hostIp, { dir: join(cp.dir, "registry"), pidFile: cp.pidFile });
    if (runtime === "real")
      cluster.info.images = await pushProjectImages(`${cp.net.hostIp}:${REGISTRY_PORT}`);
  } catch (err) {
    console.error(`${runtime} nodes failed to start:`, err);
    await stop();
    return;
  }
  await writeFile(infoPath, JSON.stringify(cluster.info, null, 2));
  await copyFile(cp.adminKubeconfig, kubeconfigPath);
  console.log(`control plane ${cp.server}; binaries ${cp.binaries.kubeBin}`);
  for (const n of cluster.nodeNames()) {
    const node = runtime === "real" ? cluster.realNode(n) : cluster.node(n);
    console.log(`node ${n} (${runtime}): ${node.ip}, folder ${node.dir}`);
  }
  // Stay alive: the cluster lives as long as this supervisor.
  setInterval(() => undefined, 1 << 30);
}

/** MS2M_NODES: a count (node-a, node-b, ...; 1 to 6) or comma-separated names; default two. */
function nodeNames(value = "2"): string[] {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n < 1 || n > 6) throw new Error(`NODES=${value}: between 1 and 6 nodes`);
    return Array.from({ length: n }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
  }
  return value.split(",").filter(Boolean);
}

async function down(): Promise<void> {
  const pid = await servePid();
  if (!pid) {
    console.log("no cluster running");
    return;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (pidAlive(pid) && Date.now() < deadline) await sleep(200);
  if (pidAlive(pid)) process.kill(pid, "SIGKILL");
  await rm(kubeconfigPath, { force: true });
  await rm(infoPath, { force: true });
  console.log("cluster down");
}

const command = process.argv[2];
const commands: Record<string, () => Promise<void>> = { up, down, serve };
const fn = command ? commands[command] : undefined;
if (!fn) {
  console.error("usage: node hack/cluster.ts up|down");
  process.exit(2);
}
await fn();
