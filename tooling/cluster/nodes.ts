// Simulated worker nodes (sim/) for tests, `make cluster-up` and the demo. A node is a process
// in its own network namespace; it is steered through a unix control socket in its folder, so
// the process that started it (global setup) and the ones that use it (test files) may differ.
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import type { StorageConfig } from "../../src/checkpoint/skopeo.ts";
import type { ImageCommandInput, Latencies, NodeConfigInput, RuntimeOptions } from "../../sim/config.ts";
import { NodePaths } from "../../sim/paths.ts";
import { run, sleep, tryRun, waitFor } from "../exec.ts";
import {
  createNodeNamespace,
  deleteNodeNamespace,
  networkForSlot,
  nodeNamespace,
  setNodeLink,
  type ClusterNetwork,
} from "./network.ts";
import { CertificateAuthority } from "./pki.ts";
import { ManagedProcess } from "../process.ts";
import {
  linkRealNodes,
  RealNode,
  unlinkRealNode,
  startRealNode,
  type RealNodeInfo,
  type RealNodeOptions,
} from "./real-node.ts";
import { readRelayControl, TcpRelay, writeRelayControl } from "../broker/relay.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const simMain = join(repoRoot, "sim", "main.ts");

/** The counter test app (sim/testapp/counter.ts) as an image the nodes know. */
export const COUNTER_IMAGE = "ms2m.test/counter:dev";
/** Prints what a container sees (env, mounts, its ServiceAccount identity): sim/testapp/inspect.ts. */
export const INSPECT_IMAGE = "ms2m.test/inspect:dev";
export const testAppImages = (): Record<string, ImageCommandInput> => ({
  [COUNTER_IMAGE]: { command: [process.execPath, join(repoRoot, "sim", "testapp", "counter.ts")] },
  [INSPECT_IMAGE]: { command: [process.execPath, join(repoRoot, "sim", "testapp", "inspect.ts")] },
});

/** Where a cluster is, as global setup provides it to test files (vitest `inject("cluster")`). */
export interface ClusterInfo {
  kubeconfig: string;
  server: string;
  dir: string;
  slot: number;
  hostIp: string;
  caFile: string;
  nodes: ClusterNodeInfo[];
  /** amqp:// URL of the broker as pods reach it (through the relay on hostIp). */
  brokerUrl: string;
  /** What the nodes are: simulated (sim/) or real (kubelet + CRI-O + runc + CRIU). Default simulated. */
  runtime?: NodeRuntime;
  /** Real runtime: the project's images as pushed to the cluster's registry (references nodes pull). */
  images?: ClusterImages;
}

export interface ClusterImages {
  controller: string;
  agent: string;
  workload: string;
}

export type NodeRuntime = "simulated" | "real";
export type ClusterNodeInfo = SimNodeInfo | RealNodeInfo;
const isReal = (n: ClusterNodeInfo): n is RealNodeInfo => (n as RealNodeInfo).runtime === "real";

/** The broker relay's control file (see TcpRelay): outages for one cluster without stopping the broker. */
export function brokerRelayControlFile(info: Pick<ClusterInfo, "dir">): string {
  return join(info.dir, "broker-relay.json");
}

export interface SimNodeInfo {
  name: string;
  ip: string;
  dir: string;
  runtime?: "simulated";
}

export interface SimNodeOptions {
  latencies?: Partial<Latencies>;
  images?: Record<string, ImageCommandInput>;
  labels?: Record<string, string>;
  capacity?: { cpu: string; memory: string; pods: string };
  insecureRegistries?: string[];
  podEnv?: Record<string, string>;
  heartbeatMs?: number;
  /** The node's container runtime (CRI-O): `{ criuSupport: false }` = `enable_criu_support = false`. */
  runtime?: Partial<RuntimeOptions>;
  /** Index of the node address in the slot (default: the lowest free one). */
  index?: number;
}

export interface SimNodeStatus {
  name: string;
  ip: string;
  ready: { ready: boolean; reason: string; message: string };
  heartbeatsPaused: boolean;
  latencies: Latencies;
  images: string[];
  pods: {
    namespace: string;
    name: string;
    uid: string;
    containers: { name: string; pid?: number; logFile?: string }[];
  }[];
}

/** A handle on one simulated node. */
export class SimNode {
  readonly name: string;
  readonly ip: string;
  readonly dir: string;
  readonly paths: NodePaths;
  private readonly net: ClusterNetwork;

  constructor(info: SimNodeInfo, net: ClusterNetwork) {
    this.name = info.name;
    this.ip = info.ip;
    this.dir = info.dir;
    this.paths = new NodePaths(info.dir);
    this.net = net;
  }

  get info(): SimNodeInfo {
    return { name: this.name, ip: this.ip, dir: this.dir };
  }

  get netns(): string {
    return nodeNamespace(this.net, this.name);
  }

  /** The node's /var/lib/kubelet/checkpoints. */
  get checkpointsDir(): string {
    return this.paths.checkpoints;
  }

  /** The node's containers-storage (what CRI-O would read). */
  get storage(): StorageConfig {
    return this.paths.storageConfig("vfs");
  }

  /** A path of the node's filesystem (hostPath volumes live there). */
  hostPath(path: string): string {
    return this.paths.host(path);
  }

  /** The current log file of a container (what `kubectl logs` shows). */
  async logFile(namespace: string, pod: string, container: string): Promise<string | undefined> {
    const p = (await this.status()).pods.find((x) => x.namespace === namespace && x.name === pod);
    return p?.containers.find((c) => c.name === container)?.logFile;
  }

  async containerLog(namespace: string, pod: string, container: string): Promise<string> {
    const file = await this.logFile(namespace, pod, container);
    return file ? readFile(file, "utf8").catch(() => "") : "";
  }

  status(): Promise<SimNodeStatus> {
    return control<SimNodeStatus>(this.paths.controlSocket, "GET", "/status");
  }

  async setLatencies(latencies: Partial<Latencies>): Promise<void> {
    await control(this.paths.controlSocket, "PUT", "/latencies", latencies);
  }

  /** Adds image -> command mappings (merged with the existing ones). */
  async setImages(images: Record<string, ImageCommandInput>): Promise<void> {
    await control(this.paths.controlSocket, "PUT", "/images", images);
  }

  /** Marks a mapped image as already pulled (so `imagePullPolicy: Never` finds it). */
  async preloadImage(image: string): Promise<void> {
    await control(this.paths.controlSocket, "POST", "/images/preload", { image });
  }

  /** The kubelet reports Ready=False (or True again). */
  async setReady(ready: boolean, reason?: string): Promise<void> {
    await control(this.paths.controlSocket, "PUT", "/ready", { ready, ...(reason ? { reason } : {}) });
  }

  /** Stops Lease renewals and status updates: kube-controller-manager marks the node Unknown. */
  async pauseHeartbeats(paused: boolean): Promise<void> {
    await control(this.paths.controlSocket, "PUT", "/heartbeats", { paused });
  }

  /** Cuts the node off the network (or reconnects it). */
  async setLink(up: boolean): Promise<void> {
    await setNodeLink(this.net, this.name, up);
  }

  /** Processes in the node's namespace (the simulator and its containers). */
  async pids(): Promise<number[]> {
    const out = await run("ip", ["netns", "pids", this.netns]).catch(() => "");
    return out.split("\n").filter(Boolean).map(Number);
  }

  /**
   * Shuts the node down: every container is stopped, the namespace removed. The Node object
   * stays (and turns NotReady) unless `deleteNode` is given a client.
   */
  async stop(deleteNode?: k8s.KubeConfig): Promise<void> {
    if (existsSync(this.paths.controlSocket)) {
      await control(this.paths.controlSocket, "POST", "/shutdown").catch(() => undefined);
    }
    const deadline = Date.now() + 10_000;
    while ((await this.pids()).length > 0 && Date.now() < deadline) await sleep(100);
    await this.crash();
    await deleteNodeNamespace(this.net, this.name);
    await rm(this.paths.controlSocket, { force: true });
    if (deleteNode) {
      await deleteNode
        .makeApiClient(k8s.CoreV1Api)
        .deleteNode({ name: this.name })
        .catch(() => undefined);
    }
  }

  /** Kills the simulator and every container at once, as a power loss would. */
  async crash(): Promise<void> {
    for (const pid of await this.pids()) await tryRun("kill", ["-9", String(pid)]);
  }
}

/** HTTP over the node's control socket. */
function control<T = unknown>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path, headers: { "content-type": "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`node control ${method} ${path}: ${text}`));
          else resolve((text ? JSON.parse(text) : {}) as T);
        });
      },
    );
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Starts a simulated node of the cluster described by `info` (the control plane must run). */
export async function startSimNode(
  info: Omit<ClusterInfo, "nodes">,
  name: string,
  options: SimNodeOptions = {},
): Promise<SimNode> {
  const net = networkForSlot(info.slot);
  const nodesDir = join(info.dir, "nodes");
  await mkdir(nodesDir, { recursive: true });
  const index = options.index ?? (await freeIndex(nodesDir, net, name));
  const ip = net.nodeIp(index);
  const dir = join(nodesDir, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, "pki"), { recursive: true, mode: 0o700 });

  // Certificates from the cluster CA: the kubelet's identity and its serving certificate.
  const ca = new CertificateAuthority(dirname(info.caFile));
  const [client, serving] = await Promise.all([
    ca.issue(`node-${name}-client`, {
      commonName: `system:node:${name}`,
      organizations: ["system:nodes"],
      usage: "client",
    }),
    ca.issue(`node-${name}-serving`, {
      commonName: name,
      dnsNames: [name],
      ipAddresses: [ip],
      usage: "server",
    }),
  ]);
  const config: NodeConfigInput = {
    nodeName: name,
    nodeIp: ip,
    dir,
    apiServer: info.server,
    apiServerHost: info.hostIp,
    apiServerPort: Number(new URL(info.server).port || 443),
    caFile: info.caFile,
    clientCert: client.cert,
    clientKey: client.key,
    servingCert: serving.cert,
    servingKey: serving.key,
    images: { ...testAppImages(), ...options.images },
    ...(options.latencies ? { latencies: options.latencies as Latencies } : {}),
    ...(options.labels ? { labels: options.labels } : {}),
    ...(options.capacity ? { capacity: options.capacity } : {}),
    // Test registries on the host's bridge address speak plain HTTP.
    insecureRegistries: [`${info.hostIp}:*`, ...(options.insecureRegistries ?? [])],
    ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
    podEnv: { MS2M_BROKER_URL: info.brokerUrl, ...options.podEnv },
    ...(options.runtime ? { runtime: options.runtime } : {}),
  };
  const configPath = join(dir, "config.json");
  await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  await writeFile(join(dir, "index"), String(index));

  const ns = await createNodeNamespace(net, name, ip);
  const proc = new ManagedProcess(`sim-${name}`, join(dir, "sim.log"));
  await proc.start(
    "ip",
    ["netns", "exec", ns, process.execPath, simMain, configPath],
    join(info.dir, "pids"),
    {
      ...process.env,
      LOG_LEVEL: process.env.MS2M_SIM_LOG_LEVEL ?? "info",
    },
  );
  const node = new SimNode({ name, ip, dir }, net);
  await waitFor(
    `simulated node ${name}`,
    async () => {
      if (!proc.running) throw new Error(`simulator exited:\n${await proc.tail()}`);
      return existsSync(join(dir, "ready")) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  ).catch(async (err: unknown) => {
    await node.stop();
    throw err;
  });
  return node;
}

/** The lowest node address index no other node folder of this cluster uses. */
async function freeIndex(nodesDir: string, net: ClusterNetwork, name: string): Promise<number> {
  const used = new Set<number>();
  for (const entry of await readdir(nodesDir).catch(() => [] as string[])) {
    if (entry === name) continue;
    const alive = existsSync(`/run/netns/${nodeNamespace(net, entry)}`);
    const idx = Number(await readFile(join(nodesDir, entry, "index"), "utf8").catch(() => "NaN"));
    if (alive && Number.isInteger(idx)) used.add(idx);
  }
  for (let i = 0; i < 14; i++) if (!used.has(i)) return i;
  throw new Error("no free node address in this slot");
}

/** Waits until the Node object reports Ready=True. */
export async function waitForNodeReady(kc: k8s.KubeConfig, name: string, timeoutMs = 60_000): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await waitFor(
    `node ${name} Ready`,
    async () => {
      const node = await core.readNode({ name });
      const ready = node.status?.conditions?.find((c) => c.type === "Ready");
      const tainted = node.spec?.taints?.some((t) => t.key === "node.kubernetes.io/not-ready");
      return ready?.status === "True" && !tainted ? true : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/**
 * The kubelet authorizes /checkpoint as `nodes/checkpoint`, which the API server's kubelet
 * client role (system:kubelet-api-admin) lacks: without this grant the node proxy route answers
 * 403, as on a kubeadm cluster. Idempotent.
 */
export async function grantApiServerCheckpoint(kc: k8s.KubeConfig): Promise<void> {
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const name = "ms2m-test:apiserver-kubelet-checkpoint";
  const ignoreExists = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await rbac
    .createClusterRole({
      body: {
        metadata: { name },
        rules: [{ apiGroups: [""], resources: ["nodes/checkpoint"], verbs: ["create"] }],
      },
    })
    .catch(ignoreExists);
  await rbac
    .createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
        subjects: [
          { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "kube-apiserver-kubelet-client" },
        ],
      },
    })
    .catch(ignoreExists);
}

export interface TestClusterNodesOptions {
  /** Node names (default node-a, node-b). */
  nodes?: string[];
  /** Simulated (default) or real nodes. */
  runtime?: NodeRuntime;
  nodeOptions?: SimNodeOptions;
  /** For real nodes (their index comes from their position in `nodes`). */
  realNodeOptions?: Omit<RealNodeOptions, "index">;
  /** Relay hostIp:5672 to the broker on 127.0.0.1:5672 (default true). */
  brokerRelay?: boolean;
}

/**
 * Nodes and relays around a running control plane. In global setup (or `make cluster-up`):
 * `TestCluster.start(controlPlaneInfo)`; in a test file: `TestCluster.connect(inject("cluster"))`.
 */
export class TestCluster {
  readonly info: ClusterInfo;
  readonly net: ClusterNetwork;
  private readonly nodes = new Map<string, SimNode>();
  private readonly realNodes = new Map<string, RealNode>();
  private readonly owned = new Set<string>();
  private readonly relays: TcpRelay[] = [];

  private constructor(info: ClusterInfo) {
    this.info = info;
    this.net = networkForSlot(info.slot);
    for (const n of info.nodes) {
      if (isReal(n)) this.realNodes.set(n.name, new RealNode(n, info.slot));
      else this.nodes.set(n.name, new SimNode(n, this.net));
    }
  }

  get runtime(): NodeRuntime {
    return this.info.runtime ?? "simulated";
  }

  /** Starts the broker relay and the nodes (in parallel) around a running control plane. */
  static async start(
    cp: Omit<ClusterInfo, "nodes" | "brokerUrl">,
    options: TestClusterNodesOptions = {},
  ): Promise<TestCluster> {
    const runtime = options.runtime ?? "simulated";
    const cluster = new TestCluster({
      ...cp,
      nodes: [],
      brokerUrl: `amqp://guest:guest@${cp.hostIp}:5672`,
      runtime,
    });
    try {
      await grantApiServerCheckpoint(cluster.kubeConfig());
      if (options.brokerRelay ?? true) {
        await cluster.relay(5672, 5672, brokerRelayControlFile(cluster.info));
      }
      const names = options.nodes ?? ["node-a", "node-b"];
      if (runtime === "real") {
        await Promise.all(
          names.map((n, i) => cluster.startRealNode(n, { index: i, ...options.realNodeOptions })),
        );
      } else {
        await Promise.all(names.map((n, i) => cluster.startNode(n, { index: i, ...options.nodeOptions })));
      }
      const kc = cluster.kubeConfig();
      await Promise.all(names.map((n) => waitForNodeReady(kc, n, runtime === "real" ? 120_000 : 60_000)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Attaches to a cluster started by another process (nodes are steered, not owned). */
  static connect(info: ClusterInfo): TestCluster {
    return new TestCluster(info);
  }

  /** Relays hostIp:port to 127.0.0.1:targetPort, for loopback-only services. */
  async relay(port: number, targetPort = port, controlFile?: string): Promise<TcpRelay> {
    const r = await TcpRelay.start(
      { host: this.info.hostIp, port },
      { host: "127.0.0.1", port: targetPort },
      controlFile ? { controlFile } : {},
    );
    this.relays.push(r);
    return r;
  }

  /**
   * A broker outage for this cluster only (pods and the controller reach the broker through the
   * relay; the shared broker and the test's own 127.0.0.1 connections are untouched): every
   * connection through the relay is reset and new ones are refused for `ms` (at most 120 s,
   * enforced by the relay even if this process dies). Works from any process (control file).
   */
  cutBroker(ms: number): void {
    const file = brokerRelayControlFile(this.info);
    writeRelayControl(file, { ...readRelayControl(file), cutUntil: Date.now() + ms });
  }

  /** Ends a cut at once (idempotent; safe to call when nothing is cut). */
  restoreBroker(): void {
    const file = brokerRelayControlFile(this.info);
    const c = readRelayControl(file);
    if (c.cutUntil !== undefined) writeRelayControl(file, { ...c, cutUntil: 0 });
  }

  /** Resets every connection through the broker relay once (close_all_connections for this cluster). */
  dropBrokerConnections(): void {
    const file = brokerRelayControlFile(this.info);
    const c = readRelayControl(file);
    writeRelayControl(file, { ...c, dropSeq: (c.dropSeq ?? 0) + 1 });
  }

  kubeConfig(): k8s.KubeConfig {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(this.info.kubeconfig);
    return kc;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) {
      const hint = this.realNodes.has(name) ? ` (${name} is a real node: realNode())` : "";
      throw new Error(`no simulated node ${name}${hint} (have ${[...this.nodes.keys()].join(", ")})`);
    }
    return n;
  }

  realNode(name: string): RealNode {
    const n = this.realNodes.get(name);
    if (!n) throw new Error(`no real node ${name} (have ${[...this.realNodes.keys()].join(", ")})`);
    return n;
  }

  nodeNames(): string[] {
    return [...this.nodes.keys(), ...this.realNodes.keys()];
  }

  /** Real nodes of this cluster. */
  realNodeList(): RealNode[] {
    return [...this.realNodes.values()];
  }

  /** Starts another node; this TestCluster owns it and stops it in stop(). */
  async startNode(name: string, options: SimNodeOptions = {}): Promise<SimNode> {
    const node = await startSimNode(this.info, name, options);
    this.nodes.set(name, node);
    this.owned.add(name);
    this.info.nodes = [...this.info.nodes.filter((n) => n.name !== name), node.info];
    return node;
  }

  /**
   * Starts a real node (kubelet + CRI-O + runc + CRIU) and routes pods between it and the other
   * real nodes; this TestCluster owns it. Resolves before the Node is Ready.
   */
  async startRealNode(name: string, options: RealNodeOptions): Promise<RealNode> {
    const node = await startRealNode(this.info, name, {
      ...options,
      // The harness's registries on the host's bridge address speak plain HTTP.
      insecureRegistries: [...(options.insecureRegistries ?? []), `${this.info.hostIp}:5000`],
    });
    this.realNodes.set(name, node);
    this.owned.add(name);
    this.info.nodes = [...this.info.nodes.filter((n) => n.name !== name), node.info];
    await linkRealNodes(this.realNodeList());
    return node;
  }

  /** Stops a node and deletes its Node object. */
  async stopNode(name: string): Promise<void> {
    const real = this.realNodes.get(name);
    if (real) {
      await unlinkRealNode(real, this.realNodeList());
      await real.stop(this.kubeConfig());
    } else await this.node(name).stop(this.kubeConfig());
    this.nodes.delete(name);
    this.realNodes.delete(name);
    this.owned.delete(name);
    this.info.nodes = this.info.nodes.filter((n) => n.name !== name);
  }

  /** Stops what this instance started: its nodes (Node objects deleted) and relays. */
  async stop(): Promise<void> {
    await Promise.all([...this.owned].map((n) => this.stopNode(n).catch(() => undefined)));
    for (const r of this.relays.splice(0)) await r.stop();
  }
}
