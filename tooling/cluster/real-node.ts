// Real worker nodes: a kubelet and CRI-O (runc, conmon, CRIU) per node, joined to the local
// control plane. Several nodes share one machine, so each node gets what a machine would give it:
//  - a network namespace on the cluster bridge (its node IP) with a CNI bridge `cni0` and a pod
//    CIDR of its own; routes make pods of every node reach each other and the host;
//  - a persistent mount namespace in which per-node folders are bind-mounted over the standard
//    paths (/var/lib/kubelet, /var/lib/containers, /run/crio, …), so CRI-O, the kubelet and the
//    agent DaemonSet's hostPath volumes mean exactly what they mean on a real node, and every
//    mount the runtime makes dies with the namespace;
//  - a cgroup subtree `/ms2m<slot>-<node>` in every v1 hierarchy (the kubelet's cgroupRoot), which
//    holds every process of the node: the sweep kills and removes the node by that tree alone.
// Facts this relies on were measured on this kind of machine: ../shared/reference/REAL-RUNTIME.md.
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { stringify } from "yaml";
import { run, sleep, tryRun, waitFor } from "../exec.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import {
  createNodeNamespace,
  deleteNodeNamespace,
  networkForSlot,
  nodeNamespace,
  type ClusterNetwork,
} from "./network.ts";
import { nodeBinaries, type NodeBinaries } from "./node-binaries.ts";
import { CertificateAuthority } from "./pki.ts";
import { ManagedProcess } from "../process.ts";

/** Standard node paths that get a per-node folder (bind-mounted in the node's mount namespace). */
export const NODE_PATHS = [
  "/var/lib/kubelet",
  "/var/lib/containers",
  "/run/containers",
  "/run/crio",
  "/var/lib/crio",
  "/var/lib/cni",
  "/etc/cni/net.d",
  "/var/log/pods",
  "/var/log/containers",
  "/var/lib/ms2m-agent",
  "/etc/crio",
  "/etc/containers",
  "/etc/kubernetes",
] as const;

/** The sysctls the kubelet rewrites at start (restored when the last real node stops). */
const KUBELET_SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"];

const SLOT_ROOT = process.env.MS2M_SLOT_DIR ?? "/tmp/ms2m-slots";
/** Machine-wide bookkeeping shared by every slot with real nodes. */
const MACHINE_STATE = join(SLOT_ROOT, "real-nodes");

/** Where a real node is, as ClusterInfo carries it between processes. */
export interface RealNodeInfo {
  name: string;
  ip: string;
  dir: string;
  /** Index of the node in the slot (its address and pod CIDR derive from it). */
  index: number;
  podCidr: string;
  runtime: "real";
}

export interface RealNodeOptions {
  index: number;
  /** CRI-O's `enable_criu_support` (default true): false makes a node that cannot checkpoint or restore. */
  criuSupport?: boolean;
  labels?: Record<string, string>;
  /** Registries CRI-O pulls from over plain HTTP (the harness's registry on the bridge). */
  insecureRegistries?: string[];
}

/** What a node needs to know about its cluster. */
export interface RealClusterContext {
  slot: number;
  dir: string;
  server: string;
  hostIp: string;
  caFile: string;
}

/** The pod CIDR of node `index` in `slot`: distinct across slots, so routes never overlap. */
export function podCidrFor(slot: number, index: number): string {
  if (index < 0 || index > 15) throw new Error(`node index ${index} out of range (0-15)`);
  return `10.244.${slot * 16 + index}.0/24`;
}

/** The `kubernetes` Service's address (first of the slot's service range; see control-plane.ts). */
function kubernetesServiceIp(net: ClusterNetwork): string {
  const base = Number(net.hostIp.split(".").at(-1)) - 1;
  return `${net.hostIp.split(".").slice(0, 3).join(".")}.${base + 17}`;
}

const cgroupName = (slot: number, node: string) => `ms2m${slot}-${node}`;

/** A handle on one real node (the process that started it, or any other that knows its info). */
export class RealNode {
  readonly info: RealNodeInfo;
  readonly slot: number;
  readonly net: ClusterNetwork;

  constructor(info: RealNodeInfo, slot: number) {
    this.info = info;
    this.slot = slot;
    this.net = networkForSlot(slot);
  }

  get name(): string {
    return this.info.name;
  }
  get ip(): string {
    return this.info.ip;
  }
  get dir(): string {
    return this.info.dir;
  }
  get netns(): string {
    return nodeNamespace(this.net, this.name);
  }
  /** The nsfs file that keeps the node's mount namespace alive. */
  get mountNs(): string {
    return join(this.dir, "ns", "mnt");
  }
  get cgroup(): string {
    return cgroupName(this.slot, this.name);
  }

  /** Where the node's `path` (one of NODE_PATHS or below) lives on the host. */
  hostPath(path: string): string {
    const base = NODE_PATHS.find((p) => path === p || path.startsWith(`${p}/`));
    if (!base) throw new Error(`${path} is not a per-node path (${NODE_PATHS.join(", ")})`);
    return join(this.dir, "fs", path);
  }

  /** The node's /var/lib/kubelet/checkpoints. */
  get checkpointsDir(): string {
    return this.hostPath("/var/lib/kubelet/checkpoints");
  }

  /** Runs a command inside the node (its mount and network namespace). */
  exec(cmd: string, args: string[], options: { input?: string } = {}): Promise<string> {
    return run(
      "nsenter",
      [`--mount=${this.mountNs}`, `--net=/run/netns/${this.netns}`, "--", cmd, ...args],
      options,
    );
  }

  async crictl(args: string[]): Promise<string> {
    const { crictl } = await nodeBinaries();
    return this.exec(crictl, [
      "--runtime-endpoint",
      "unix:///run/crio/crio.sock",
      "--timeout",
      "30s",
      ...args,
    ]);
  }

  /** Images in the node's containers-storage, as CRI-O lists them. */
  async images(): Promise<{ id: string; repoTags: string[]; size: string }[]> {
    const out = JSON.parse(await this.crictl(["images", "-o", "json"])) as {
      images: { id: string; repoTags: string[]; size: string }[];
    };
    return out.images;
  }

  /**
   * The next CRIU run on this node fails (the criu wrapper's injected fault), until cleared:
   * a restore that the runtime refuses, on demand.
   */
  async setCriuFault(on: boolean): Promise<void> {
    const file = this.hostPath("/run/crio/ms2m-fault-criu");
    if (on) await writeFile(file, "injected by the test harness\n");
    else await rm(file, { force: true });
  }

  /**
   * A container's log, every instance of it in that pod, oldest first (CRI format lines reduced
   * to their messages, as `kubectl logs` shows them). The path comes from CRI-O: a restored
   * container logs to `<pod log dir>/<container ID>.log`, not `<container>/<n>.log`.
   */
  async containerLog(namespace: string, pod: string, container: string): Promise<string> {
    const ids = (
      await this.crictl([
        "ps",
        "-a",
        "-q",
        "--name",
        `^${container}$`,
        "--label",
        `io.kubernetes.pod.name=${pod}`,
        "--label",
        `io.kubernetes.pod.namespace=${namespace}`,
      ]).catch(() => "")
    )
      .split("\n")
      .filter(Boolean);
    const logs: { created: string; text: string }[] = [];
    for (const id of ids) {
      const info = JSON.parse(await this.crictl(["inspect", id])) as {
        status?: { createdAt?: string; logPath?: string };
      };
      const path = info.status?.logPath;
      if (!path) continue;
      const text = await readFile(this.hostPath(path), "utf8").catch(() => "");
      logs.push({ created: info.status?.createdAt ?? "", text });
    }
    // "<time> <stream> <P|F> <message>" per line: keep the message.
    return logs
      .sort((a, b) => a.created.localeCompare(b.created))
      .map((l) => l.text)
      .join("")
      .split("\n")
      .map((l) => l.split(" ").slice(3).join(" "))
      .join("\n");
  }

  /** Stops the node and removes everything it made (see teardownRealNode). */
  async stop(deleteNode?: k8s.KubeConfig): Promise<void> {
    await teardownRealNode(this.slot, this.dir, this.name);
    if (deleteNode) {
      await deleteNode
        .makeApiClient(k8s.CoreV1Api)
        .deleteNode({ name: this.name })
        .catch(() => undefined);
    }
  }
}

/** Starts a real node: namespaces, cgroups, CRI-O, kubelet; resolves once CRI-O answers (not yet Ready). */
export async function startRealNode(
  cluster: RealClusterContext,
  name: string,
  options: RealNodeOptions,
): Promise<RealNode> {
  const bins = await nodeBinaries();
  const net = networkForSlot(cluster.slot);
  const ip = net.nodeIp(options.index);
  const dir = join(cluster.dir, "nodes", name);
  const info: RealNodeInfo = {
    name,
    ip,
    dir,
    index: options.index,
    podCidr: podCidrFor(cluster.slot, options.index),
    runtime: "real",
  };
  const node = new RealNode(info, cluster.slot);
  await teardownRealNode(cluster.slot, dir, name); // leftovers of a node of that name
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "real-node.json"), JSON.stringify(info, null, 2));
  try {
    await saveSysctlsOnce();
    await prepareFolders(node);
    await writeNodeFiles(node, cluster, bins, options);
    await createNodeNamespace(net, name, ip);
    await configureNetwork(node, cluster);
    await createMountNamespace(node);
    await createCgroups(node);
    await loadPauseImage(node, bins);
    const pidFile = join(cluster.dir, "pids");
    const crio = new ManagedProcess(`crio-${name}`, join(dir, "crio.log"));
    await crio.start("nsenter", inNode(node, [bins.crio, "--config", "/etc/crio/crio.conf"]), pidFile, {
      ...process.env,
      // runc finds criu on PATH; the wrapper sets CRIU_FAULT and the CRIU config (REAL-RUNTIME.md).
      PATH: `${bins.criuDir}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
    });
    await waitFor(
      `CRI-O on ${name}`,
      async () => {
        if (!crio.running) throw new Error(`crio exited:\n${await crio.tail()}`);
        return (
          (await node.crictl(["info"]).then(
            () => true,
            () => undefined,
          )) ?? undefined
        );
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const kubelet = new ManagedProcess(`kubelet-${name}`, join(dir, "kubelet.log"));
    await kubelet.start(
      "nsenter",
      inNode(node, [
        bins.kubelet,
        "--config=/etc/kubernetes/kubelet.yaml",
        "--kubeconfig=/etc/kubernetes/kubelet.kubeconfig",
        `--hostname-override=${name}`,
        `--node-ip=${ip}`,
        ...(options.labels && Object.keys(options.labels).length > 0
          ? [
              `--node-labels=${Object.entries(options.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(",")}`,
            ]
          : []),
        "--v=1",
      ]),
      pidFile,
    );
    await waitFor(
      `kubelet on ${name} serving`,
      async () => {
        if (!kubelet.running) throw new Error(`kubelet exited:\n${await kubelet.tail()}`);
        const ok = await node.exec("bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/10248"]).then(
          () => true,
          () => undefined,
        );
        return ok;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    return node;
  } catch (err) {
    await teardownRealNode(cluster.slot, dir, name).catch(() => undefined);
    throw err;
  }
}

/**
 * `nsenter` arguments that join the node's cgroup (every v1 hierarchy, hugetlb included: it is
 * only mounted inside the node's mount namespace) and exec `argv` there.
 */
function inNode(node: RealNode, argv: string[]): string[] {
  const join = `for d in /sys/fs/cgroup/*/${node.cgroup}/runtime; do [ -f "$d/cgroup.procs" ] && echo $$ > "$d/cgroup.procs"; done; exec "$@"`;
  return [`--mount=${node.mountNs}`, `--net=/run/netns/${node.netns}`, "--", "sh", "-c", join, "sh", ...argv];
}

async function prepareFolders(node: RealNode): Promise<void> {
  for (const p of NODE_PATHS) await mkdir(node.hostPath(p), { recursive: true });
  await mkdir(node.hostPath("/var/lib/kubelet/checkpoints"), { recursive: true, mode: 0o700 });
  await mkdir(node.hostPath("/etc/kubernetes/pki"), { recursive: true, mode: 0o700 });
  await mkdir(join(node.dir, "ns"), { recursive: true });
}

async function writeNodeFiles(
  node: RealNode,
  cluster: RealClusterContext,
  bins: NodeBinaries,
  options: RealNodeOptions,
): Promise<void> {
  const etc = (p: string) => node.hostPath(p);
  // The kubelet's identity (Node authorizer: system:node:<name>) and its serving certificate.
  const ca = new CertificateAuthority(join(cluster.dir, "pki"));
  const [client, serving] = await Promise.all([
    ca.issue(`node-${node.name}-client`, {
      commonName: `system:node:${node.name}`,
      organizations: ["system:nodes"],
      usage: "client",
    }),
    ca.issue(`node-${node.name}-serving`, {
      commonName: node.name,
      dnsNames: [node.name],
      ipAddresses: [node.ip],
      usage: "server",
    }),
  ]);
  const pki = etc("/etc/kubernetes/pki");
  await Promise.all([
    copyFile(cluster.caFile, join(pki, "ca.crt")),
    copyFile(client.cert, join(pki, "kubelet-client.crt")),
    copyFile(client.key, join(pki, "kubelet-client.key")),
    copyFile(serving.cert, join(pki, "kubelet.crt")),
    copyFile(serving.key, join(pki, "kubelet.key")),
  ]);
  await writeKubeconfig(
    etc("/etc/kubernetes/kubelet.kubeconfig"),
    cluster.server,
    "/etc/kubernetes/pki/ca.crt",
    `system:node:${node.name}`,
    {
      clientCertificate: "/etc/kubernetes/pki/kubelet-client.crt",
      clientKey: "/etc/kubernetes/pki/kubelet-client.key",
    },
  );
  await writeFile(etc("/etc/kubernetes/kubelet.yaml"), stringify(kubeletConfig(node)));
  await writeFile(etc("/etc/crio/crio.conf"), crioConfig(bins, options.criuSupport ?? true));
  await mkdir(etc("/etc/crio/crio.conf.d"), { recursive: true });
  await writeFile(
    etc("/etc/containers/registries.conf"),
    [
      "unqualified-search-registries = []",
      ...(options.insecureRegistries ?? []).flatMap((r) => [
        "",
        "[[registry]]",
        `location = "${r}"`,
        "insecure = true",
      ]),
      "",
    ].join("\n"),
  );
  await writeFile(
    etc("/etc/containers/policy.json"),
    JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }, null, 2),
  );
  await writeFile(
    etc("/etc/cni/net.d/10-ms2m-bridge.conflist"),
    JSON.stringify(
      {
        cniVersion: "1.0.0",
        name: "ms2m",
        plugins: [
          {
            type: "bridge",
            bridge: "cni0",
            isGateway: true,
            // No NAT: the host and the other nodes route pod CIDRs to this node.
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: "host-local",
              ranges: [[{ subnet: node.info.podCidr }]],
              routes: [{ dst: "0.0.0.0/0" }],
            },
          },
        ],
      },
      null,
      2,
    ),
  );
}

function kubeletConfig(node: RealNode): object {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: node.ip,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: 10248,
    tlsCertFile: "/etc/kubernetes/pki/kubelet.crt",
    tlsPrivateKeyFile: "/etc/kubernetes/pki/kubelet.key",
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: "/etc/kubernetes/pki/ca.crt" },
    },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: "unix:///run/crio/crio.sock",
    cgroupDriver: "cgroupfs",
    cgroupRoot: `/${node.cgroup}`,
    // This machine has a v1/v2 hybrid layout; 1.36 refuses v1 unless told.
    failCgroupV1: false,
    // The kubelet cannot lower its own oom_score_adj here (no CAP_SYS_RESOURCE).
    oomScoreAdj: 0,
    // RuntimeDefault seccomp blocks io_uring, which CRIU cannot dump (Node.js 24 uses it otherwise).
    seccompDefault: true,
    failSwapOn: false,
    // No cluster DNS: pods reach everything by address.
    resolvConf: "",
    hairpinMode: "none",
    serializeImagePulls: false,
    // A shared machine's disk: never evict or garbage-collect because of what other nodes use.
    evictionHard: {
      "memory.available": "100Mi",
      "nodefs.available": "1%",
      "imagefs.available": "1%",
      "nodefs.inodesFree": "1%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    shutdownGracePeriod: "0s",
    nodeStatusReportFrequency: "10s",
  };
}

function crioConfig(bins: NodeBinaries, criuSupport: boolean): string {
  // Standard paths: the node's mount namespace maps them to its own folders.
  return `# Written by the ms2m test harness (test/harness/real-node.ts).
[crio]
root = "/var/lib/containers/storage"
runroot = "/run/containers/storage"
storage_driver = "overlay"
log_dir = "/var/lib/crio/pod-logs"
version_file = "/run/crio/version"
version_file_persist = "/var/lib/crio/version"
clean_shutdown_file = "/var/lib/crio/clean.shutdown"

[crio.api]
listen = "/run/crio/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
selinux = false
enable_criu_support = ${criuSupport}
drop_infra_ctr = true
pinns_path = "${bins.pinns}"
# Not /run/netns: that is where \`ip netns\` keeps the nodes themselves.
namespaces_dir = "/run/crio/ns"
container_exits_dir = "/run/crio/exits"
container_attach_socket_dir = "/run/crio"
log_level = "info"

[crio.runtime.runtimes.runc]
runtime_path = "/usr/sbin/runc"
runtime_type = "oci"
runtime_root = "/run/crio/runc"
monitor_path = "/usr/bin/conmon"

[crio.image]
pause_image = "localhost/pause:latest"
pause_command = "/pause"

[crio.network]
network_dir = "/etc/cni/net.d/"
plugin_dirs = ["/usr/lib/cni"]
`;
}

/**
 * Inside the node's network namespace: forwarding between cni0 and eth0, the route to every
 * other node's pods is added by linkRealNodes; the `kubernetes` Service address is DNATed to
 * the API server (there is no kube-proxy: it is the only Service the tests' pods use).
 */
async function configureNetwork(node: RealNode, cluster: RealClusterContext): Promise<void> {
  const ns = node.netns;
  await run("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  const api = new URL(cluster.server);
  const svc = kubernetesServiceIp(node.net);
  for (const chain of ["PREROUTING", "OUTPUT"]) {
    await run("ip", [
      "netns",
      "exec",
      ns,
      "iptables",
      "-t",
      "nat",
      "-A",
      chain,
      "-d",
      `${svc}/32`,
      "-p",
      "tcp",
      "--dport",
      "443",
      "-j",
      "DNAT",
      "--to-destination",
      `${api.hostname}:${api.port || "443"}`,
    ]);
  }
  // The host (controller, tests, broker relay, registry) reaches this node's pods.
  await run("ip", ["route", "replace", node.info.podCidr, "via", node.ip, "dev", node.net.bridge]);
}

/** Removes the other nodes' routes to a node's pods (the node is going). */
export async function unlinkRealNode(gone: RealNode, others: RealNode[]): Promise<void> {
  for (const n of others) {
    if (n !== gone) await tryRun("ip", ["netns", "exec", n.netns, "ip", "route", "del", gone.info.podCidr]);
  }
}

/** Routes between the pod CIDRs of real nodes of one cluster (each node to every other). */
export async function linkRealNodes(nodes: RealNode[]): Promise<void> {
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      await run("ip", ["netns", "exec", a.netns, "ip", "route", "replace", b.info.podCidr, "via", b.ip]);
    }
  }
}

async function createMountNamespace(node: RealNode): Promise<void> {
  const nsDir = join(node.dir, "ns");
  // The nsfs bind needs a mount point with private propagation.
  await run("mount", ["--bind", nsDir, nsDir]);
  await run("mount", ["--make-private", nsDir]);
  await writeFile(node.mountNs, "");
  await run("unshare", [`--mount=${node.mountNs}`, "--propagation", "private", "true"]);
  for (const p of [...NODE_PATHS, "/sys/fs/cgroup/hugetlb"]) await ensureHostMountPoint(p);
  const script = [
    "set -e",
    ...NODE_PATHS.map((p) => `mount --bind '${node.hostPath(p)}' '${p}'`),
    // This machine's hugetlb controller exists only on cgroup2; runc in v1 mode needs a v1
    // hierarchy for the hugepage limits the kubelet always sends (REAL-RUNTIME.md).
    "mkdir -p /sys/fs/cgroup/hugetlb",
    "mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb",
    // As on a systemd host: mounts are shared (a peer group of this namespace only, the host is
    // not in it). CRI-O requires it for hostPaths under its storage root (it forces
    // HostToContainer propagation there), and the kubelet for mount propagation.
    "mount --make-rshared /",
  ].join("\n");
  await run("nsenter", [`--mount=${node.mountNs}`, "--", "sh", "-c", script]);
}

/** Mount points must exist on the host; the ones created here are removed with the last node. */
async function ensureHostMountPoint(path: string): Promise<void> {
  if (existsSync(path)) return;
  await mkdir(MACHINE_STATE, { recursive: true });
  await mkdir(path, { recursive: true });
  await writeFile(join(MACHINE_STATE, "created-paths"), `${path}\n`, { flag: "a" });
}

async function cgroupHierarchies(node: RealNode): Promise<string[]> {
  const out = await node.exec("sh", [
    "-c",
    'for d in /sys/fs/cgroup/*/; do mountpoint -q "$d" && echo "$d"; done',
  ]);
  return out
    .split("\n")
    .filter(Boolean)
    .map((d) => d.replace(/\/$/, ""));
}

async function createCgroups(node: RealNode): Promise<void> {
  const script = [
    "set -e",
    `for h in /sys/fs/cgroup/*/; do`,
    `  mountpoint -q "$h" || continue`,
    `  mkdir -p "\${h}${node.cgroup}/runtime"`,
    // A new cpuset cgroup starts with no CPUs and no memory nodes: copy the parent's.
    `  if [ -f "\${h}cpuset.cpus" ]; then`,
    `    cat "\${h}cpuset.cpus" > "\${h}${node.cgroup}/cpuset.cpus"; cat "\${h}cpuset.mems" > "\${h}${node.cgroup}/cpuset.mems"`,
    `    cat "\${h}cpuset.cpus" > "\${h}${node.cgroup}/runtime/cpuset.cpus"; cat "\${h}cpuset.mems" > "\${h}${node.cgroup}/runtime/cpuset.mems"`,
    "  fi",
    "done",
  ].join("\n");
  await node.exec("sh", ["-c", script]);
}

async function loadPauseImage(node: RealNode, bins: NodeBinaries): Promise<void> {
  await node.exec("skopeo", [
    "copy",
    "--quiet",
    `oci:${bins.pauseOci}:latest`,
    "containers-storage:[overlay@/var/lib/containers/storage+/run/containers/storage]localhost/pause:latest",
  ]);
}

/**
 * Stops a real node and removes everything it made, also after its owner died: every process in
 * its cgroup tree (frozen, then killed), its cgroups, its mount namespace with every mount in it,
 * its network namespace, its folder. Best effort and idempotent.
 */
export async function teardownRealNode(slot: number, dir: string, name: string): Promise<void> {
  const node = new RealNode({ name, ip: "", dir, index: 0, podCidr: "", runtime: "real" }, slot);
  // The host's route to the node's pods (the bridge stays with the cluster).
  const recorded = await readFile(join(dir, "real-node.json"), "utf8")
    .then((t) => JSON.parse(t) as Partial<RealNodeInfo>)
    .catch(() => undefined);
  if (recorded?.podCidr && recorded.ip) {
    await tryRun("ip", ["route", "del", recorded.podCidr, "via", recorded.ip]);
  }
  const hasMountNs = existsSync(node.mountNs) && (await tryRun("mountpoint", ["-q", join(dir, "ns")]));
  const nsUsable = hasMountNs && (await tryRun("nsenter", [`--mount=${node.mountNs}`, "true"]));
  if (nsUsable) {
    await killCgroupTree(node);
    // Cgroups, bottom-up, in every hierarchy (hugetlb is only visible in here).
    const script = [
      `for h in /sys/fs/cgroup/*/; do`,
      `  [ -d "\${h}${node.cgroup}" ] || continue`,
      `  find "\${h}${node.cgroup}" -depth -type d -exec rmdir {} + 2>/dev/null || true`,
      "done",
      "umount /sys/fs/cgroup/hugetlb 2>/dev/null || true",
    ].join("\n");
    await run("nsenter", [`--mount=${node.mountNs}`, "--", "sh", "-c", script]).catch(() => undefined);
  }
  if (existsSync(node.mountNs)) await tryRun("umount", ["-l", node.mountNs]);
  if (existsSync(join(dir, "ns"))) await tryRun("umount", ["-l", join(dir, "ns")]);
  await deleteNodeNamespace(node.net, name);
  // Cgroups left on the host side (a node whose mount namespace was already gone).
  for (const h of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
    const path = join("/sys/fs/cgroup", h, node.cgroup);
    if (existsSync(path)) await tryRun("find", [path, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"]);
  }
  await rm(dir, { recursive: true, force: true }).catch(async () => {
    // Busy mounts of a crashed runtime: lazily detached above, removable a moment later.
    await sleep(500);
    await rm(dir, { recursive: true, force: true });
  });
  await restoreMachineStateIfLast();
}

/** Freezes the node's cgroup tree, SIGKILLs every process in it, thaws, waits until it is empty. */
async function killCgroupTree(node: RealNode): Promise<void> {
  const freezer = `/sys/fs/cgroup/freezer/${node.cgroup}`;
  const procsIn = async (): Promise<number[]> => {
    const out = await run("find", [freezer, "-name", "cgroup.procs", "-exec", "cat", "{}", "+"]).catch(
      () => "",
    );
    return out.split("\n").filter(Boolean).map(Number);
  };
  if (!existsSync(freezer)) return;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pids = await procsIn();
    if (pids.length === 0) return;
    await writeFile(join(freezer, "freezer.state"), "FROZEN").catch(() => undefined);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await writeFile(join(freezer, "freezer.state"), "THAWED").catch(() => undefined);
    if (Date.now() > deadline)
      throw new Error(`processes of ${node.cgroup} survive SIGKILL: ${pids.join(" ")}`);
    await sleep(100);
  }
}

async function saveSysctlsOnce(): Promise<void> {
  await mkdir(MACHINE_STATE, { recursive: true });
  const file = join(MACHINE_STATE, "sysctls.json");
  if (existsSync(file)) return;
  const values: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) values[k] = (await readFile(`/proc/sys/${k}`, "utf8")).trim();
  await writeFile(file, JSON.stringify(values));
}

/**
 * When no real node runs on this machine any more (in any slot), puts back what the kubelets
 * changed machine-wide: the sysctls, and the empty mount points created on the host.
 */
async function restoreMachineStateIfLast(): Promise<void> {
  if (await anyRealNodeLeft()) return;
  const sysctls = join(MACHINE_STATE, "sysctls.json");
  if (existsSync(sysctls)) {
    const values = JSON.parse(await readFile(sysctls, "utf8")) as Record<string, string>;
    for (const [k, v] of Object.entries(values)) await writeFile(`/proc/sys/${k}`, v).catch(() => undefined);
    await rm(sysctls, { force: true });
  }
  const created = join(MACHINE_STATE, "created-paths");
  if (existsSync(created)) {
    const paths = (await readFile(created, "utf8")).split("\n").filter(Boolean);
    // Deepest first; only folders that are still empty (rmdir refuses the others).
    for (const p of [...new Set(paths)].sort((a, b) => b.length - a.length))
      await rmdir(p).catch(() => undefined);
    await rm(created, { force: true });
  }
  await rmdir(MACHINE_STATE).catch(() => undefined);
}

/** Whether a real node's mount namespace still exists in any slot. */
async function anyRealNodeLeft(): Promise<boolean> {
  for (const slot of await readdir(SLOT_ROOT).catch(() => [] as string[])) {
    const nodes = join(SLOT_ROOT, slot, "nodes");
    for (const n of await readdir(nodes).catch(() => [] as string[])) {
      if (existsSync(join(nodes, n, "real-node.json")) && existsSync(join(nodes, n, "ns", "mnt")))
        return true;
    }
  }
  return false;
}

/** Tears down every real node a (possibly dead) run left in a slot's folder. */
export async function sweepRealNodes(slot: number, slotDir: string): Promise<void> {
  const nodes = join(slotDir, "nodes");
  for (const n of await readdir(nodes).catch(() => [] as string[])) {
    if (existsSync(join(nodes, n, "real-node.json"))) await teardownRealNode(slot, join(nodes, n), n);
  }
}

/** Exposed for the cluster-down check: the hierarchies a node has cgroups in. */
export { cgroupHierarchies };
