// The ms2m stack on a cluster, without vitest (shared by the cluster tests, `make demo` and the
// evaluation): ms2m deployed from config/ (CRD, RBAC, the agent DaemonSet run by the simulated
// nodes, the agents' TLS Secret), a registry on the bridge, the controller binary acting as its
// ServiceAccount, the reference workload and a producer, the message accounting and downtime.
import { randomBytes } from "node:crypto";
import { chmodSync, createReadStream, mkdirSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execFile } from "node:child_process";
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { isAlreadyExists } from "../../src/kube/errors.ts";
import { parseAllDocuments } from "yaml";
import { controlPlaneBinaries } from "./binaries.ts";
// Type only (erased): context.ts itself needs vitest.
import type { KubectlResult } from "./context.ts";
import { sleep, waitFor } from "./exec.ts";
import { installCrd, mustSucceed, renderKustomize, repoPath } from "./fixtures.ts";
import { TestCluster, type ClusterImages, type ClusterInfo } from "./nodes.ts";
import { CertificateAuthority } from "./pki.ts";
import { ManagedProcess } from "./process.ts";
import { Producer } from "../../workload/producer.ts";
import { fromRanges, toRanges, type WorkloadState } from "../../workload/state.ts";
import { account, type AccountingReport } from "../../workload/accounting.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";

export type { KubectlResult };

/** A short-lived token of a ServiceAccount, from the TokenRequest API. */
export async function serviceAccountToken(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  audiences: string[] = [],
): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 3600, audiences } },
  });
  const token = res.status?.token;
  if (!token) throw new Error(`no token issued for ${namespace}/${name}`);
  return token;
}

export const SYSTEM_NS = "ms2m-system";
export const AGENT_IMAGE = "ghcr.io/ms2m/ms2m-agent:0.1.0";
export const CONSUMER_IMAGE = "ms2m.test/consumer:dev";
export const REGISTRY_PORT = 5000;
const GROUP = "migration.ms2m.io";
const VERSION = "v1alpha1";
const PLURAL = "statefulmigrations";

/** Runs the real kubectl (the version built with the control plane) as the admin of `info`. */
export function kubectlFor(info: ClusterInfo) {
  async function kubectl(args: string[], input?: string, extraArgs: string[] = []): Promise<KubectlResult> {
    const { kubeBin } = await controlPlaneBinaries();
    return new Promise((resolve) => {
      const child = execFile(
        `${kubeBin}/kubectl`,
        [...extraArgs, ...args],
        { env: { ...process.env, KUBECONFIG: info.kubeconfig }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      child.stdin?.end(input);
    });
  }
  /** kubectl authenticated only by a bearer token (no admin client certificate). */
  async function kubectlWithToken(token: string, args: string[], input?: string): Promise<KubectlResult> {
    return kubectl(args, input, [
      "--kubeconfig=/dev/null",
      `--server=${info.server}`,
      `--certificate-authority=${info.caFile}`,
      `--token=${token}`,
    ]);
  }
  return { kubectl, kubectlWithToken };
}

/**
 * Everything the stack helpers need to reach a cluster (the local simulated one: `info` from
 * vitest's global setup, or `.cluster/info.json` of `make cluster-up`): admin clients, the real
 * kubectl, the simulated nodes, the broker and registry addresses as pods reach them.
 */
export function stackEnv(info: ClusterInfo) {
  const cluster = TestCluster.connect(info);
  const kubeConfig = () => {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(info.kubeconfig);
    return kc;
  };
  const kc = kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const hostIp = info.hostIp;
  const brokerUrl = `amqp://guest:guest@${hostIp}:5672`;
  return {
    ...kubectlFor(info),
    kubeConfig,
    cluster,
    kc,
    core,
    apps,
    custom,
    hostIp,
    brokerUrl,
    registry: `${hostIp}:${REGISTRY_PORT}`,
  };
}
export type StackEnv = ReturnType<typeof stackEnv>;
/** The same, under the name the controller tests use. */
export type ControllerTestEnv = StackEnv;

/** The images a real cluster runs (pushed to its registry by the global setup or the demo). */
export function imagesOf(env: Pick<StackEnv, "cluster">): ClusterImages {
  const images = env.cluster.info.images;
  if (!images) throw new Error("this cluster has no images in its registry (real runtime: pushImages first)");
  return images;
}

/** Every env var of the DaemonSet container, with `overrides` replacing or adding. */
function withEnv(env: k8s.V1EnvVar[], overrides: Record<string, string>): k8s.V1EnvVar[] {
  const out = env.filter((e) => !(e.name in overrides));
  for (const [name, value] of Object.entries(overrides)) out.push({ name, value });
  return out;
}

/**
 * ms2m from config/default without the controller Deployment (the tests run the controller
 * binary on the host): CRD, RBAC, the agent DaemonSet with the simulated nodes' settings (vfs
 * containers-storage, the cluster CA for the kubelet, the test registry over HTTP), and the
 * agents' TLS Secret. Idempotent; returns the CA file the controller verifies agents with.
 */
export async function deployMs2m(env: ControllerTestEnv, work: string): Promise<{ caFile: string }> {
  const { kubectl, cluster, core } = env;
  await installCrd(kubectl);
  const real = cluster.runtime === "real";
  if (!real) {
    for (const name of cluster.nodeNames()) {
      await cluster.node(name).setImages({
        [AGENT_IMAGE]: { command: [process.execPath, repoPath("test/harness/agent-entry.ts")] },
        [CONSUMER_IMAGE]: { command: [process.execPath, repoPath("workload/consumer.ts")] },
      });
    }
  }
  const rendered = await renderKustomize(kubectl, "config/default");
  const objects = parseAllDocuments(rendered)
    .map((d) => d.toJS() as k8s.KubernetesObject & { spec?: unknown })
    .filter((o) => o.kind && !(o.kind === "Deployment" && o.metadata?.name === "ms2m-controller"));
  for (const o of objects) {
    if (o.kind !== "DaemonSet") continue;
    const ds = o as k8s.V1DaemonSet;
    const c = ds.spec?.template.spec?.containers[0];
    if (!c) throw new Error("agent DaemonSet has no container");
    // Real nodes: the agent image built by `make images`, pulled from the cluster's registry, on
    // CRI-O's overlay storage. Simulated nodes: the image name maps to the agent's sources.
    if (real) c.image = imagesOf(env).agent;
    c.env = withEnv(c.env ?? [], {
      ...(real ? {} : { AGENT_STORAGE_DRIVER: "vfs" }),
      // The cluster CA signs the kubelets' serving certificates.
      AGENT_KUBELET_CA_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      AGENT_INSECURE_REGISTRIES: env.registry,
    });
  }
  const body = objects.map((o) => `---\n${JSON.stringify(o)}\n`).join("");

  // The agents' serving certificate (every node address) and its CA, before the DaemonSet.
  const caFile = join(work, "agent-ca.crt");
  await core.createNamespace({ body: { metadata: { name: SYSTEM_NS } } }).catch(ignoreConflict);
  const existing = await core
    .readNamespacedSecret({ name: "ms2m-agent-tls", namespace: SYSTEM_NS })
    .catch(() => undefined);
  if (existing?.data?.["ca.crt"]) {
    await writeFile(caFile, Buffer.from(existing.data["ca.crt"], "base64"));
  } else {
    const ca = new CertificateAuthority(join(work, "agent-pki"));
    await ca.init();
    const ips = cluster.info.nodes.map((n) => n.ip);
    const pair = await ca.issue("agent", {
      commonName: "ms2m-agent",
      dnsNames: ["ms2m-agent"],
      ipAddresses: ips,
      usage: "both",
    });
    const data = {
      "tls.crt": (await readFile(pair.cert)).toString("base64"),
      "tls.key": (await readFile(pair.key)).toString("base64"),
      "ca.crt": (await readFile(ca.ca.cert)).toString("base64"),
    };
    await core.createNamespacedSecret({
      namespace: SYSTEM_NS,
      body: { metadata: { name: "ms2m-agent-tls" }, type: "kubernetes.io/tls", data },
    });
    await writeFile(caFile, Buffer.from(data["ca.crt"], "base64"));
  }
  mustSucceed(
    await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], body),
    "apply config/default",
  );
  await waitForAgents(env);
  return { caFile };
}

function ignoreConflict(err: unknown): void {
  if ((err as { code?: number }).code !== 409) throw err;
}

export async function waitForAgents(env: ControllerTestEnv, timeoutMs = 90_000): Promise<void> {
  const nodes = env.cluster.nodeNames();
  await waitFor(
    "ms2m-agent Ready on every node",
    async () => {
      const pods = await env.core.listNamespacedPod({
        namespace: SYSTEM_NS,
        labelSelector: "app.kubernetes.io/name=ms2m-agent",
      });
      const ready = new Set(
        pods.items
          .filter(
            (p) =>
              !p.metadata?.deletionTimestamp &&
              p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
          )
          .map((p) => p.spec?.nodeName),
      );
      return nodes.every((n) => ready.has(n)) ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The controller binary (`node cmd/ms2m-controller/main.ts`) with the ms2m-controller ServiceAccount's tokens. */
export class ControllerProcess {
  readonly env: ControllerTestEnv;
  readonly dir: string;
  readonly caFile: string;
  readonly extraEnv: Record<string, string>;
  proc: ManagedProcess | undefined;
  starts = 0;
  /** Where its pid is recorded (default <dir>/pids; the slot's pid file makes `make cluster-down` sweep it). */
  pidFile: string;
  /** The ports of the running process (loopback): /healthz and /readyz, and /metrics. */
  healthPort = 0;
  metricsPort = 0;

  constructor(env: ControllerTestEnv, dir: string, caFile: string, extraEnv: Record<string, string> = {}) {
    this.env = env;
    this.dir = dir;
    this.caFile = caFile;
    this.extraEnv = extraEnv;
    this.pidFile = join(dir, "pids");
  }

  async start(): Promise<void> {
    const admin = this.env.kc;
    const kubeToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller");
    const agentToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller", ["ms2m-agent"]);
    const cluster = admin.getCurrentCluster();
    if (!cluster) throw new Error("no cluster");
    const kubeconfig = join(this.dir, "controller.kubeconfig");
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "ms2m-controller", token: kubeToken }],
      contexts: [{ name: "ms2m-controller", cluster: cluster.name, user: "ms2m-controller" }],
      currentContext: "ms2m-controller",
    });
    await writeFile(kubeconfig, kc.exportConfig(), { mode: 0o600 });
    const tokenFile = join(this.dir, "agent-token");
    await writeFile(tokenFile, agentToken, { mode: 0o600 });
    const health = await freePort();
    const metrics = await freePort();
    this.healthPort = health;
    this.metricsPort = metrics;
    this.starts++;
    this.proc = new ManagedProcess(`controller-${this.starts}`, join(this.dir, "controller.log"));
    await this.proc.start(process.execPath, [repoPath("cmd/ms2m-controller/main.ts")], this.pidFile, {
      ...process.env,
      KUBECONFIG: kubeconfig,
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: "ms2m-controller-test",
      LEADER_ELECT: "false",
      HEALTH_PORT: String(health),
      METRICS_PORT: String(metrics),
      AGENT_CA_FILE: this.caFile,
      AGENT_TOKEN_FILE: tokenFile,
      LOG_LEVEL: "debug",
      // The test issues the agents' certificate itself (deployMs2m).
      MANAGE_AGENT_TLS: "false",
      ...this.extraEnv,
    });
    await waitFor(
      "controller ready",
      async () => {
        if (!this.proc?.running) throw new Error(`controller exited:\n${await this.proc?.tail()}`);
        const res = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(): Promise<void> {
    await this.proc?.stop(10_000);
  }

  log(): Promise<string> {
    return readFile(join(this.dir, "controller.log"), "utf8").catch(() => "");
  }
}

/**
 * Debian's docker-registry on the host bridge address (agents reach it from the node
 * namespaces). `dir` keeps its data (default: a temp folder removed on stop); `pidFile` records
 * its pid (the slot's pid file makes `make cluster-down` sweep it).
 */
export async function startRegistry(
  hostIp: string,
  options: { dir?: string; pidFile?: string } = {},
): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  // A real-node cluster runs its registry for the cluster's whole life (its nodes pull the
  // project's images from it): use that one.
  const existing = await fetch(`http://${hostIp}:${REGISTRY_PORT}/v2/`).catch(() => undefined);
  if (existing?.status === 200) return { pid: undefined, stop: async () => undefined };
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "ms2m-ctl-registry-")));
  await mkdir(dir, { recursive: true });
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`,
      `http: { addr: ${hostIp}:${REGISTRY_PORT} }`,
      "",
    ].join("\n"),
  );
  const proc = new ManagedProcess("registry", join(dir, "registry.log"));
  await proc.start("docker-registry", ["serve", cfg], options.pidFile ?? join(dir, "pids"));
  await waitFor(
    "registry",
    async () => {
      if (!proc.running) throw new Error(`registry exited: ${await proc.tail()}`);
      const res = await fetch(`http://${hostIp}:${REGISTRY_PORT}/v2/`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    { timeoutMs: 15_000 },
  );
  return {
    pid: proc.pid,
    async stop() {
      await proc.stop();
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function createNamespace(env: ControllerTestEnv, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await prepareWorkloadNamespace(env, name);
  return name;
}

/**
 * What a workload namespace needs for migrations, idempotently (bench:eval --kubeconfig reuses
 * one): the namespace, the `broker` Secret with the broker URL as pods reach it, and — as the
 * docs say a namespace owner grants it — the controller's right to read Secrets there, nowhere else.
 */
export async function prepareWorkloadNamespace(env: ControllerTestEnv, name: string): Promise<void> {
  const created = <T>(p: Promise<T>) =>
    p.then(
      () => undefined,
      (err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      },
    );
  await created(env.core.createNamespace({ body: { metadata: { name } } }));
  await waitFor(
    `default ServiceAccount in ${name}`,
    () => env.core.readNamespacedServiceAccount({ name: "default", namespace: name }).then(() => true),
    { timeoutMs: 30_000 },
  );
  const secret = { metadata: { name: "broker" }, stringData: { url: env.brokerUrl } };
  await env.core.createNamespacedSecret({ namespace: name, body: secret }).catch(async (err: unknown) => {
    if (!isAlreadyExists(err)) throw err;
    await env.core.replaceNamespacedSecret({ name: "broker", namespace: name, body: secret });
  });
  await created(
    env.kc.makeApiClient(k8s.RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace: name,
      body: {
        metadata: { name: "ms2m-broker-secret-reader" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "ms2m-broker-secret-reader",
        },
        subjects: [{ kind: "ServiceAccount", name: "ms2m-controller", namespace: SYSTEM_NS }],
      },
    }),
  );
}

/** One workload's broker names, state file and producer. */
export interface Workload {
  name: string;
  exchange: string;
  queue: string;
  /** Each consumer writes its final state to <stateDir>/<pod name at start>.json on SIGTERM. */
  stateDir: string;
  /**
   * One queue per pod (`<queue>.<pod>`, each bound to the fan-out exchange): replicas that
   * share one queue cannot be replayed loss- and duplicate-free, since the replay queue holds
   * what the other replicas took from the shared queue too.
   */
  queuePerPod?: boolean;
  /** Each consumer appends "<epoch ms> <seq>" per applied message to <appliedLogDir>/<pod>.applied. */
  appliedLogDir?: string;
}

export function workloadNames(ns: string, name: string, work: string, queuePerPod = false): Workload {
  return {
    queuePerPod,
    name,
    exchange: `ex.${ns}.${name}`,
    queue: `q.${ns}.${name}`,
    stateDir: join(work, `${ns}-${name}`),
  };
}

/** The reference consumer as a pod template, pinned to a node. */
export function consumerTemplate(
  w: Workload,
  env: ControllerTestEnv,
  nodeName: string,
): k8s.V1PodTemplateSpec {
  const real = env.cluster.runtime === "real";
  // Real pods write through hostPath volumes as the consumer image's non-root user.
  mkdirSync(w.stateDir, { recursive: true, mode: 0o777 });
  if (real) chmodSync(w.stateDir, 0o777);
  if (w.appliedLogDir) {
    mkdirSync(w.appliedLogDir, { recursive: true, mode: 0o777 });
    if (real) chmodSync(w.appliedLogDir, 0o777);
  }
  // The same folders at the same paths inside the container (real nodes have mount namespaces;
  // the simulator runs containers in the host's).
  const hostDirs = [
    { name: "state", path: w.stateDir },
    ...(w.appliedLogDir ? [{ name: "applied", path: w.appliedLogDir }] : []),
  ];
  return {
    metadata: { labels: { app: w.name, tier: "consumer" } },
    spec: {
      nodeName,
      terminationGracePeriodSeconds: 10,
      // Test machines give root no CAP_SYS_RESOURCE, and without it CRIU cannot read the rlimits
      // of a process of another user (prlimit: EPERM), so real nodes only checkpoint root
      // processes here. Real clusters have no such limit; the image itself runs as non-root.
      ...(real ? { securityContext: { runAsUser: 0 } } : {}),
      containers: [
        {
          name: "consumer",
          image: real ? imagesOf(env).workload : CONSUMER_IMAGE,
          imagePullPolicy: "IfNotPresent",
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "AMQP_URL", value: env.brokerUrl },
            { name: "EXCHANGE", value: w.exchange },
            { name: "QUEUE", value: w.queuePerPod ? `${w.queue}.$(POD_NAME)` : w.queue },
            { name: "PREFETCH", value: "20" },
            // Files named after the pod the process runs in *now* (a restored process keeps the
            // source's environment): read from the Downward API when written.
            { name: "STATE_DIR", value: w.stateDir },
            { name: "LOG_LEVEL", value: "info" },
            ...(w.appliedLogDir ? [{ name: "APPLIED_LOG_DIR", value: w.appliedLogDir }] : []),
          ],
          volumeMounts: [
            { name: "podinfo", mountPath: "/etc/podinfo" },
            ...(real ? hostDirs.map((d) => ({ name: d.name, mountPath: d.path })) : []),
          ],
        },
      ],
      volumes: [
        {
          name: "podinfo",
          downwardAPI: {
            items: [
              { path: "name", fieldRef: { fieldPath: "metadata.name" } },
              { path: "uid", fieldRef: { fieldPath: "metadata.uid" } },
            ],
          },
        },
        ...(real
          ? hostDirs.map((d) => ({ name: d.name, hostPath: { path: d.path, type: "Directory" } }))
          : []),
      ],
    },
  };
}

export async function createDeployment(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  node: string,
  replicas = 1,
) {
  const template = consumerTemplate(w, env, node);
  return env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas, selector: { matchLabels: { app: w.name } }, template },
    },
  });
}

export async function createStatefulSet(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  node: string,
  replicas = 1,
) {
  const template = consumerTemplate(w, env, node);
  return env.apps.createNamespacedStatefulSet({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: {
        replicas,
        serviceName: w.name,
        podManagementPolicy: "Parallel",
        selector: { matchLabels: { app: w.name } },
        template,
      },
    },
  });
}

export async function createBarePod(env: ControllerTestEnv, ns: string, w: Workload, node: string) {
  const template = consumerTemplate(w, env, node);
  return env.core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: w.name, labels: template.metadata?.labels ?? {} }, spec: template.spec! },
  });
}

export const isReady = (pod: k8s.V1Pod) =>
  !pod.metadata?.deletionTimestamp &&
  pod.status?.phase === "Running" &&
  pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** Pods matching the app label, ready, with their log showing the consumer is consuming. */
export async function waitForConsumers(
  env: ControllerTestEnv,
  ns: string,
  app: string,
  count: number,
): Promise<k8s.V1Pod[]> {
  const pods = await waitFor(
    `${count} ready ${app} pods`,
    async () => {
      const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
      const ready = list.items.filter(isReady);
      return ready.length === count ? ready : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  for (const p of pods) {
    await waitFor(
      `consumer ${p.metadata?.name} started`,
      async () => {
        const name = p.metadata?.name ?? "";
        // On the simulated cluster straight from the node; on any other (bench:eval --kubeconfig)
        // through the API server, as `kubectl logs` does.
        const log = await containerLog(env, ns, name, "consumer", p.spec?.nodeName ?? "");
        return /consumer started/.test(log) ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
  }
  return pods;
}

/**
 * A container's log: from the simulated node's files, from the real node's /var/log/pods, or (a
 * cluster reached only through its API: bench:eval --kubeconfig) through the API server.
 */
export async function containerLog(
  env: Pick<StackEnv, "cluster" | "core">,
  ns: string,
  pod: string,
  container: string,
  node: string,
): Promise<string> {
  if (!env.cluster) {
    return env.core.readNamespacedPodLog({ namespace: ns, name: pod, container }).catch(() => "");
  }
  if (env.cluster.runtime === "real") return env.cluster.realNode(node).containerLog(ns, pod, container);
  return env.cluster.node(node).containerLog(ns, pod, container);
}

export class TestProducer {
  readonly confirmed: number[] = [];
  readonly producer: Producer;
  private started = false;

  constructor(env: ControllerTestEnv, w: Workload, rate: number) {
    this.producer = new Producer({
      url: "amqp://guest:guest@127.0.0.1:5672",
      exchange: w.exchange,
      rate,
      producerId: w.name,
      onConfirmed: (seq) => this.confirmed.push(seq),
    });
  }

  async start(): Promise<void> {
    await this.producer.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    if (this.started) await this.producer.stop();
  }
}

export interface MigrationSpec {
  sourcePod: string;
  targetNode?: string;
  migrationStrategy?: "ShadowPod" | "Sequential";
  transferMode?: "Direct" | "Registry";
  checkpointImageRepository?: string;
  replayCutoffSeconds?: number;
}

export async function createMigration(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  w: Workload | undefined,
  spec: MigrationSpec,
): Promise<StatefulMigration> {
  const body = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "StatefulMigration",
    metadata: { name },
    spec: {
      transferMode: "Direct",
      ...spec,
      ...(spec.transferMode === "Registry" && !spec.checkpointImageRepository
        ? { checkpointImageRepository: `${env.registry}/ms2m/checkpoints` }
        : {}),
      ...(w
        ? {
            messageQueueConfig: {
              queueName: w.queue,
              exchangeName: w.exchange,
              brokerSecretRef: { name: "broker", key: "url" },
            },
          }
        : {}),
    },
  };
  return (await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body,
  })) as StatefulMigration;
}

export async function getMigration(
  env: ControllerTestEnv,
  ns: string,
  name: string,
): Promise<StatefulMigration | undefined> {
  try {
    return (await env.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name,
    })) as StatefulMigration;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

export async function deleteMigration(env: ControllerTestEnv, ns: string, name: string): Promise<void> {
  await env.custom.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  });
}

export async function waitForPhase(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  phases: string[],
  timeoutMs = 90_000,
  intervalMs = 50,
): Promise<StatefulMigration> {
  const deadline = Date.now() + timeoutMs;
  let last: StatefulMigration | undefined;
  for (;;) {
    last = await getMigration(env, ns, name).catch(() => last);
    const phase = last?.status?.phase ?? "";
    if (last && phases.includes(phase)) return last;
    if (phase === "Failed")
      throw new Error(`migration ${ns}/${name} failed: ${JSON.stringify(last?.status?.failure)}`);
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${ns}/${name} in ${phases.join("|")}; status ${JSON.stringify(last?.status)}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** Waits until the migration is Failed|Completed, failing fast on Failed unless allowed. */
export async function waitForCompletion(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  timeoutMs = 90_000,
) {
  return waitForPhase(env, ns, name, ["Completed"], timeoutMs, 100);
}

export async function waitForGone(
  read: () => Promise<unknown>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `${what} gone`,
    async () => {
      try {
        await read();
        return undefined;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return true;
        throw err;
      }
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/**
 * Stops the producer, lets the consumers catch up, stops every consumer (`stopAll`; each writes
 * its state on SIGTERM) and checks the producer's confirmed sequence numbers against the union
 * of their states (a sequence number in two states counts as applied twice).
 */
export async function finalAccounting(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  producer: TestProducer,
  stopAll: () => Promise<void>,
  onlyPod?: string,
): Promise<AccountingReport> {
  await producer.stop();
  await sleep(1_500);
  // Emptied, not recreated: real pods have the folder bind-mounted (a new folder would be unseen).
  await mkdir(w.stateDir, { recursive: true });
  for (const f of await readdir(w.stateDir)) await rm(join(w.stateDir, f), { force: true });
  const before = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items
    .length;
  await stopAll();
  await waitFor(
    `${w.name} consumers stopped`,
    async () => {
      const pods = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` });
      return pods.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000 },
  );
  const files = await waitFor(
    `${before} state files of ${w.name}`,
    async () => {
      const names = (await readdir(w.stateDir)).filter((f) => f.endsWith(".json"));
      if (onlyPod) return names.includes(`${onlyPod}.json`) ? [`${onlyPod}.json`] : undefined;
      return names.length >= before ? names : undefined;
    },
    { timeoutMs: 10_000 },
  );
  const states = await Promise.all(
    files.map(
      async (f) => (JSON.parse(await readFile(join(w.stateDir, f), "utf8")) as { app: WorkloadState }).app,
    ),
  );
  return account(producer.confirmed, mergeStates(states));
}

export function mergeStates(states: WorkloadState[]): WorkloadState {
  const seen = new Set<number>();
  const twice: number[] = [];
  let count = 0;
  let checksum = 0;
  let lastSeq = 0;
  for (const st of states) {
    count += st.count;
    checksum = (checksum + st.checksum) >>> 0;
    lastSeq = Math.max(lastSeq, st.lastSeq);
    twice.push(...st.twice);
    for (const seq of fromRanges(st.seen)) {
      if (seen.has(seq)) twice.push(seq);
      else seen.add(seq);
    }
  }
  return { count, checksum, lastSeq, seen: toRanges(seen), twice };
}

/** Stops every consumer of a workload: scale to 0, or delete the bare pod. */
export function stopper(env: ControllerTestEnv, ns: string, kind: "deploy" | "sts" | "pod", name: string) {
  return async () => {
    if (kind === "pod") {
      const pods = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` });
      for (const p of pods.items)
        await env.core.deleteNamespacedPod({ namespace: ns, name: p.metadata?.name ?? "" });
      return;
    }
    mustSucceed(await env.kubectl(["-n", ns, "scale", `${kind}/${name}`, "--replicas=0"]), "scale to 0");
  };
}

export async function workDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ms2m-${prefix}-`));
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The phase durations of a migration (ms), from status.phaseTimings. */
export function phaseMillis(m: StatefulMigration): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of m.status?.phaseTimings ?? []) {
    if (t.durationMillis !== undefined) out[t.phase] = t.durationMillis;
  }
  return out;
}

/** One file's setup: ms2m deployed, the controller binary running, a fresh namespace. */
export async function setupFile(
  env: ControllerTestEnv,
  prefix: string,
  controllerEnv: Record<string, string> = {},
) {
  const work = await workDir(prefix);
  const { caFile } = await deployMs2m(env, work);
  const controller = new ControllerProcess(env, work, caFile, controllerEnv);
  await controller.start();
  const ns = await createNamespace(env, prefix);
  return {
    work,
    controller,
    ns,
    async teardown() {
      await controller.stop();
      await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    },
  };
}

/**
 * How many checkpoints the node's runtime took of a pod: from the simulator's log, or on a real
 * node from CRI-O's ("Checkpointing container: <id>" / "Checkpointed container: <id>", matched
 * against the container IDs the pod has had).
 */
export async function checkpointCount(
  env: ControllerTestEnv,
  node: string,
  ns: string,
  pod: string,
  event: "checkpointed" | "checkpoint started" = "checkpointed",
): Promise<number> {
  if (env.cluster.runtime === "real") {
    const p = await env.core.readNamespacedPod({ namespace: ns, name: pod }).catch(() => undefined);
    const ids = (p?.status?.containerStatuses ?? [])
      .map((c) => c.containerID?.replace(/^cri-o:\/\//, ""))
      .filter((id): id is string => !!id);
    const log = await readFile(join(env.cluster.realNode(node).dir, "crio.log"), "utf8").catch(() => "");
    const word = event === "checkpointed" ? "Checkpointed container: " : "Checkpointing container: ";
    return log.split("\n").filter((l) => ids.some((id) => l.includes(`${word}${id}`))).length;
  }
  const log = await readFile(join(env.cluster.node(node).dir, "sim.log"), "utf8").catch(() => "");
  return log.split("\n").filter((l) => l.includes(`"msg":"${event}"`) && l.includes(`"pod":"${ns}/${pod}"`))
    .length;
}

/** Whether the broker still has a queue (passive declare on a throwaway channel). */
export async function queueExists(name: string): Promise<boolean> {
  const { connect } = await import("amqplib");
  const conn = await connect("amqp://guest:guest@127.0.0.1:5672");
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    try {
      await ch.checkQueue(name);
      await ch.close();
      return true;
    } catch {
      return false;
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

export const controllerOf = (p: k8s.V1Pod) => p.metadata?.ownerReferences?.find((o) => o.controller);

/** Pods of a workload that are not being deleted. */
export async function livePods(env: ControllerTestEnv, ns: string, app: string): Promise<k8s.V1Pod[]> {
  const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

export const migrationGone = (env: ControllerTestEnv, ns: string, name: string) =>
  waitForGone(
    () => getMigration(env, ns, name).then((x) => x ?? Promise.reject({ code: 404 })),
    `migration ${name}`,
  );

/** One applied message: when (epoch ms), which sequence number, in which pod. */
export interface AppliedEntry {
  at: number;
  seq: number;
  pod: string;
}

/** Every consumer's applied log (see Workload.appliedLogDir), ordered by time. */
export async function readAppliedLogs(dir: string): Promise<AppliedEntry[]> {
  const out: AppliedEntry[] = [];
  for (const f of (await readdir(dir).catch(() => [] as string[])).filter((x) => x.endsWith(".applied"))) {
    const pod = f.slice(0, -".applied".length);
    const lines = createInterface({ input: createReadStream(join(dir, f)), crlfDelay: Infinity });
    for await (const line of lines) {
      const [at, seq] = line.split(" ").map(Number);
      if (at && seq) out.push({ at, seq, pod });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

export interface Downtime {
  /** The longest time (ms) in [from, to] in which no consumer applied a message. */
  gapMs: number;
  /** Where that gap starts and ends (epoch ms). */
  gapStart: number;
  gapEnd: number;
  /** The median gap between applied messages before `from` (what "no downtime" looks like). */
  normalGapMs: number;
}

/**
 * The consumer's downtime across a migration: the longest gap in message processing between
 * `from` (the migration's start) and `to` (the producer's stop), over all pods of the workload
 * (source, target): the time during which nothing was applied although messages kept coming.
 */
export function downtime(entries: AppliedEntry[], from: number, to: number): Downtime {
  const inside = entries.filter((e) => e.at >= from && e.at <= to).map((e) => e.at);
  const before = entries.filter((e) => e.at < from).map((e) => e.at);
  const points = [before.at(-1) ?? from, ...inside];
  let best = { gapMs: 0, gapStart: from, gapEnd: from };
  for (let i = 1; i < points.length; i++) {
    const gap = points[i]! - points[i - 1]!;
    if (gap > best.gapMs) best = { gapMs: gap, gapStart: points[i - 1]!, gapEnd: points[i]! };
  }
  const last = points.at(-1)!;
  if (to - last > best.gapMs) best = { gapMs: to - last, gapStart: last, gapEnd: to };
  const gaps = before
    .slice(1)
    .map((t, i) => t - before[i]!)
    .sort((a, b) => a - b);
  return { ...best, normalGapMs: gaps[Math.floor(gaps.length / 2)] ?? 0 };
}
