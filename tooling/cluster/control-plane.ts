import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { request } from "node:https";
import { readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { controlPlaneBinaries, type Binaries } from "./binaries.ts";
import { run, tryRun, waitFor } from "../exec.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import type { ClusterInfo } from "./nodes.ts";
import {
  acquireSlot,
  createBridge,
  deleteBridge,
  listSlotNamespaces,
  networkForSlot,
  type ClusterNetwork,
  type SlotLease,
} from "./network.ts";
import { createPki, type Pki } from "./pki.ts";
import { killRecorded, ManagedProcess } from "../process.ts";
import { sweepRealNodes } from "./real-node.ts";

/** kube-controller-manager controllers the operator and its tests rely on. */
const CONTROLLERS = [
  "serviceaccount-token-controller",
  "serviceaccount-controller",
  "namespace-controller",
  "garbage-collector-controller",
  "deployment-controller",
  "replicaset-controller",
  "statefulset-controller",
  "daemonset-controller",
  "job-controller",
  "ttl-after-finished-controller",
  "node-lifecycle-controller",
  "taint-eviction-controller",
  "pod-garbage-collector-controller",
  "root-ca-certificate-publisher-controller",
  "disruption-controller",
  "endpointslice-controller",
  "clusterrole-aggregation-controller",
];

export interface ControlPlaneOptions {
  /** Slot to use; by default the first free one. */
  slot?: number;
  /** Process that owns the slot (its death lets a later run reclaim the slot). */
  ownerPid?: number;
  /** How long a node may miss heartbeats before it is marked NotReady. */
  nodeMonitorGracePeriod?: string;
}

/**
 * A real Kubernetes control plane: etcd, kube-apiserver (RBAC + Node authorization,
 * ServiceAccount token issuing), kube-controller-manager and kube-scheduler, on the
 * cluster's bridge address. Only kubelets and the container runtime are simulated, by sim/.
 */
export class ControlPlane {
  readonly net: ClusterNetwork;
  readonly dir: string;
  readonly pki: Pki;
  readonly binaries: Binaries;
  readonly adminKubeconfig: string;
  readonly serviceCidr: string;
  private readonly lease: SlotLease;
  private readonly processes: ManagedProcess[] = [];
  private stopped = false;

  private constructor(lease: SlotLease, pki: Pki, binaries: Binaries) {
    this.lease = lease;
    this.net = networkForSlot(lease.slot);
    this.dir = lease.dir;
    this.pki = pki;
    this.binaries = binaries;
    this.adminKubeconfig = join(this.dir, "admin.kubeconfig");
    this.serviceCidr = serviceCidrFor(this.net);
  }

  get server(): string {
    return `https://${this.net.hostIp}:6443`;
  }

  get pidFile(): string {
    return join(this.dir, "pids");
  }

  /** What the simulated nodes need to join this control plane (TestCluster.start). */
  get clusterInfo(): Omit<ClusterInfo, "nodes" | "brokerUrl"> {
    return {
      kubeconfig: this.adminKubeconfig,
      server: this.server,
      dir: this.dir,
      slot: this.net.slot,
      hostIp: this.net.hostIp,
      caFile: this.pki.ca.cert,
    };
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const binaries = await controlPlaneBinaries();
    const lease = await acquireSlot(options.ownerPid ?? process.pid, sweepSlot, options.slot);
    try {
      const net = networkForSlot(lease.slot);
      await createBridge(net);
      const pki = await createPki(join(lease.dir, "pki"), net.hostIp, firstServiceIp(net));
      const cp = new ControlPlane(lease, pki, binaries);
      await cp.boot(options);
      return cp;
    } catch (err) {
      await sweepSlot(lease.slot, lease.dir);
      await lease.release();
      throw err;
    }
  }

  private async boot(options: ControlPlaneOptions): Promise<void> {
    const { kubeBin, etcdBin } = this.binaries;
    const ip = this.net.hostIp;
    const pki = this.pki;
    const kubeconfigs = {
      admin: this.adminKubeconfig,
      kcm: join(this.dir, "kcm.kubeconfig"),
      scheduler: join(this.dir, "scheduler.kubeconfig"),
    };
    await Promise.all([
      writeKubeconfig(kubeconfigs.admin, this.server, pki.ca.cert, "ms2m-admin", {
        clientCertificate: pki.admin.cert,
        clientKey: pki.admin.key,
      }),
      writeKubeconfig(kubeconfigs.kcm, this.server, pki.ca.cert, "kcm", {
        clientCertificate: pki.controllerManager.cert,
        clientKey: pki.controllerManager.key,
      }),
      writeKubeconfig(kubeconfigs.scheduler, this.server, pki.ca.cert, "scheduler", {
        clientCertificate: pki.scheduler.cert,
        clientKey: pki.scheduler.key,
      }),
    ]);
    await mkdir(join(this.dir, "etcd"), { recursive: true, mode: 0o700 });

    await this.spawn("etcd", join(etcdBin, "etcd"), [
      "--name=ms2m",
      `--data-dir=${join(this.dir, "etcd")}`,
      `--listen-client-urls=http://${ip}:2379`,
      `--advertise-client-urls=http://${ip}:2379`,
      `--listen-peer-urls=http://${ip}:2380`,
      `--initial-advertise-peer-urls=http://${ip}:2380`,
      `--initial-cluster=ms2m=http://${ip}:2380`,
      "--unsafe-no-fsync", // throwaway data: durability buys nothing here
      "--log-level=warn",
    ]);

    await this.spawn("kube-apiserver", join(kubeBin, "kube-apiserver"), [
      `--etcd-servers=http://${ip}:2379`,
      `--bind-address=${ip}`,
      `--advertise-address=${ip}`,
      "--secure-port=6443",
      `--tls-cert-file=${pki.apiserver.cert}`,
      `--tls-private-key-file=${pki.apiserver.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      "--api-audiences=https://kubernetes.default.svc.cluster.local",
      `--service-cluster-ip-range=${this.serviceCidr}`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--allow-privileged=true",
      `--kubelet-client-certificate=${pki.apiserverKubeletClient.cert}`,
      `--kubelet-client-key=${pki.apiserverKubeletClient.key}`,
      `--kubelet-certificate-authority=${pki.ca.cert}`,
      "--kubelet-preferred-address-types=InternalIP",
      "--profiling=false",
      "--v=1",
    ]);
    await waitFor("kube-apiserver /readyz", () => this.readyz(), { timeoutMs: 60_000, intervalMs: 100 });

    await this.spawn("kube-controller-manager", join(kubeBin, "kube-controller-manager"), [
      `--kubeconfig=${kubeconfigs.kcm}`,
      `--authentication-kubeconfig=${kubeconfigs.kcm}`,
      `--authorization-kubeconfig=${kubeconfigs.kcm}`,
      `--bind-address=${ip}`,
      "--secure-port=10257",
      "--leader-elect=false",
      `--controllers=${CONTROLLERS.join(",")}`,
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--root-ca-file=${pki.ca.cert}`,
      `--service-cluster-ip-range=${this.serviceCidr}`,
      `--node-monitor-grace-period=${options.nodeMonitorGracePeriod ?? "20s"}`,
      "--concurrent-deployment-syncs=10",
      "--concurrent-replicaset-syncs=10",
      "--concurrent-statefulset-syncs=10",
      "--v=1",
    ]);
    await this.spawn("kube-scheduler", join(kubeBin, "kube-scheduler"), [
      `--kubeconfig=${kubeconfigs.scheduler}`,
      `--authentication-kubeconfig=${kubeconfigs.scheduler}`,
      `--authorization-kubeconfig=${kubeconfigs.scheduler}`,
      `--bind-address=${ip}`,
      "--secure-port=10259",
      "--leader-elect=false",
      "--v=1",
    ]);

    const kc = this.kubeConfig();
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    // As kubeadm does: the API server's identity towards kubelets may use the kubelet API.
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: "ms2m-test:apiserver-kubelet-client" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "system:kubelet-api-admin",
        },
        subjects: [
          { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "kube-apiserver-kubelet-client" },
        ],
      },
    });
    // Pods need the default ServiceAccount, made by kube-controller-manager.
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await waitFor(
      "the default ServiceAccount",
      async () =>
        (await core.readNamespacedServiceAccount({ name: "default", namespace: "default" }))
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
  }

  private async spawn(name: string, bin: string, args: string[]): Promise<ManagedProcess> {
    const proc = new ManagedProcess(name, join(this.dir, `${name}.log`));
    await proc.start(bin, args, this.pidFile);
    this.processes.push(proc);
    return proc;
  }

  process(name: string): ManagedProcess | undefined {
    return this.processes.find((p) => p.name === name);
  }

  private readyz(): Promise<true | undefined> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.server}/readyz`,
        {
          ca: readFileSync(this.pki.ca.cert),
          cert: readFileSync(this.pki.admin.cert),
          key: readFileSync(this.pki.admin.key),
          timeout: 2_000,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200 ? true : undefined);
        },
      );
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error("readyz timed out")));
      req.end();
    }).then(
      (v) => v as true | undefined,
      async (err) => {
        const apiserver = this.process("kube-apiserver");
        if (apiserver && !apiserver.running) {
          throw new Error(`kube-apiserver exited:\n${await apiserver.tail()}`, { cause: err });
        }
        return undefined;
      },
    );
  }

  kubeConfig(): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.adminKubeconfig);
    return kc;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const proc of [...this.processes].reverse()) await proc.stop();
    await sweepSlot(this.net.slot, this.dir);
    await this.lease.release();
  }
}

/** The upper /28 of the slot: virtual service IPs that route nowhere but the bridge. */
function serviceCidrFor(net: ClusterNetwork): string {
  const base = Number(net.hostIp.split(".").at(-1)) - 1;
  return `${net.hostIp.split(".").slice(0, 3).join(".")}.${base + 16}/28`;
}

function firstServiceIp(net: ClusterNetwork): string {
  const base = Number(net.hostIp.split(".").at(-1)) - 1;
  return `${net.hostIp.split(".").slice(0, 3).join(".")}.${base + 17}`;
}

/** Removes everything a (possibly dead) run left in a slot: processes, namespaces, bridge. */
export async function sweepSlot(slot: number, dir: string): Promise<void> {
  // Real nodes first: their processes, cgroups and mounts are found through their folders.
  await sweepRealNodes(slot, dir);
  await killRecorded(join(dir, "pids"));
  for (const ns of await listSlotNamespaces(slot)) {
    await tryRun("ip", ["netns", "pids", ns]).then(async () => {
      const pids = (await run("ip", ["netns", "pids", ns]).catch(() => "")).split("\n").filter(Boolean);
      for (const pid of pids) await tryRun("kill", ["-9", pid]);
    });
    await tryRun("ip", ["netns", "del", ns]);
  }
  await deleteBridge(networkForSlot(slot));
  await rm(join(dir, "etcd"), { recursive: true, force: true });
}
