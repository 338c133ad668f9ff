// Registers the Node, then keeps its Lease and status fresh as the kubelet does. A test can
// report the node NotReady (the kubelet says so) or pause heartbeats (the kubelet is gone,
// and kube-controller-manager marks the node Unknown after its grace period).
import { arch } from "node:os";
import type { V1Node } from "@kubernetes/client-node";
import type { Logger } from "../src/common/logger.ts";
import { isConflict, isNotFound, type ApiClient } from "./api-client.ts";
import type { NodeConfig } from "./config.ts";
import { SIM_RUNTIME_VERSION } from "./crio-config.ts";

const KUBELET_VERSION = "v1.36.3-ms2m-sim";
const LEASE_SECONDS = 40;

export interface ReadyState {
  ready: boolean;
  reason: string;
  message: string;
}

export class NodeStatusReporter {
  private readonly api: ApiClient;
  private readonly config: NodeConfig;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private readyState: ReadyState = {
    ready: true,
    reason: "KubeletReady",
    message: "kubelet is posting ready status",
  };
  private readyTransition = new Date();
  private paused = false;

  constructor(api: ApiClient, config: NodeConfig, log: Logger) {
    this.api = api;
    this.config = config;
    this.log = log;
  }

  get ready(): ReadyState {
    return this.readyState;
  }

  get heartbeatsPaused(): boolean {
    return this.paused;
  }

  async register(): Promise<void> {
    const node: V1Node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: this.config.nodeName,
        labels: {
          "kubernetes.io/hostname": this.config.nodeName,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": goArch(),
          "beta.kubernetes.io/os": "linux",
          "beta.kubernetes.io/arch": goArch(),
          "ms2m.io/simulated": "true",
          ...this.config.labels,
        },
      },
      spec: {},
      // As the kubelet's initial node: with its status, so the node is Ready from the start
      // and the node lifecycle controller never taints it not-ready.
      status: this.currentStatus() as V1Node["status"],
    };
    try {
      await this.api.call("POST", "/api/v1/nodes", node);
      this.log.info("node registered");
    } catch (err) {
      if (!isConflict(err) && !(err instanceof Error && /already exists/.test(err.message))) throw err;
      this.log.info("node already registered");
    }
    await this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat(), this.config.heartbeatMs);
  }

  setReady(ready: boolean, reason?: string, message?: string): Promise<void> {
    if (ready !== this.readyState.ready) this.readyTransition = new Date();
    this.readyState = ready
      ? { ready, reason: reason ?? "KubeletReady", message: message ?? "kubelet is posting ready status" }
      : {
          ready,
          reason: reason ?? "KubeletNotReady",
          message: message ?? "container runtime is down (simulated)",
        };
    return this.heartbeat();
  }

  pauseHeartbeats(paused: boolean): Promise<void> {
    this.paused = paused;
    return paused ? Promise.resolve() : this.heartbeat();
  }

  async heartbeat(): Promise<void> {
    if (this.paused) return;
    try {
      await Promise.all([this.renewLease(), this.patchStatus()]);
    } catch (err) {
      this.log.warn({ err }, "heartbeat failed");
    }
  }

  private async renewLease(): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.config.nodeName}`;
    const spec = {
      holderIdentity: this.config.nodeName,
      leaseDurationSeconds: LEASE_SECONDS,
      renewTime: new Date().toISOString().replace("Z", "000Z"), // MicroTime
    };
    try {
      await this.api.call("PATCH", path, { spec });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const node = await this.api.call<V1Node>("GET", `/api/v1/nodes/${this.config.nodeName}`);
      await this.api.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name: this.config.nodeName,
          ownerReferences: [
            { apiVersion: "v1", kind: "Node", name: this.config.nodeName, uid: node.metadata?.uid },
          ],
        },
        spec,
      });
    }
  }

  private async patchStatus(): Promise<void> {
    const status = this.currentStatus();
    await this.api.call("PATCH", `/api/v1/nodes/${this.config.nodeName}/status`, { status }, "strategic");
  }

  private currentStatus(): object {
    const now = new Date().toISOString();
    const since = this.readyTransition.toISOString();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: since,
    });
    const { cpu, memory, pods } = this.config.capacity;
    const resources = { cpu, memory, pods, "ephemeral-storage": "100Gi" };
    const status = {
      capacity: resources,
      allocatable: resources,
      conditions: [
        condition(
          "MemoryPressure",
          "False",
          "KubeletHasSufficientMemory",
          "kubelet has sufficient memory available",
        ),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition(
          "Ready",
          this.readyState.ready ? "True" : "False",
          this.readyState.reason,
          this.readyState.message,
        ),
      ],
      addresses: [
        { type: "InternalIP", address: this.config.nodeIp },
        { type: "Hostname", address: this.config.nodeName },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: this.config.kubeletPort } },
      nodeInfo: {
        machineID: this.config.nodeName,
        systemUUID: this.config.nodeName,
        bootID: process.pid.toString(),
        kernelVersion: "ms2m-sim",
        osImage: "ms2m simulated node",
        containerRuntimeVersion: SIM_RUNTIME_VERSION,
        kubeletVersion: KUBELET_VERSION,
        kubeProxyVersion: "",
        operatingSystem: "linux",
        architecture: goArch(),
      },
    };
    return status;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function goArch(): string {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64" };
  return map[arch()] ?? arch();
}
