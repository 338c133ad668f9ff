// CheckpointPort and TransferPort over the ms2m-agent DaemonSet (HTTPS 9443 on every node).
// The agent on a node is found by listing agent pods with a field selector on the node name:
// Direct transfers go to the TARGET node's agent, never to a Service.
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { Ms2mError } from "../../common/errors.ts";
import { kubeCall } from "../../kube/errors.ts";
import type { AgentClient } from "../../transfer/index.ts";
import type {
  ArtifactRef,
  CheckpointLookup,
  CheckpointPort,
  CheckpointRequest,
  CheckpointResult,
  TransferPort,
  TransferRequest,
  TransferResult,
} from "../ports.ts";

export interface AgentLocatorOptions {
  namespace: string;
  labelSelector: string;
  port: number;
}

export class AgentLocator {
  private readonly core: CoreV1Api;
  readonly opts: AgentLocatorOptions;

  constructor(kc: KubeConfig, opts: AgentLocatorOptions) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.opts = opts;
  }

  async urlFor(node: string): Promise<string> {
    const pods = await kubeCall(() =>
      this.core.listNamespacedPod({
        namespace: this.opts.namespace,
        labelSelector: this.opts.labelSelector,
        fieldSelector: `spec.nodeName=${node}`,
      }),
    );
    const ready = pods.items.find(
      (p) =>
        p.status?.podIP && (p.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    );
    if (!ready?.status?.podIP)
      throw new Ms2mError("ServiceUnavailable", `no ready ms2m-agent on node ${node}`);
    const ip = ready.status.podIP;
    return `https://${ip.includes(":") ? `[${ip}]` : ip}:${this.opts.port}`;
  }
}

export class AgentCheckpointer implements CheckpointPort {
  readonly client: AgentClient;
  readonly locator: AgentLocator;

  constructor(client: AgentClient, locator: AgentLocator) {
    this.client = client;
    this.locator = locator;
  }

  async checkpoint(req: CheckpointRequest): Promise<CheckpointResult> {
    const url = await this.locator.urlFor(req.node);
    const res = await this.client.checkpoint(url, {
      namespace: req.namespace,
      pod: req.pod,
      container: req.container,
      ...(req.timeoutSeconds ? { timeoutSeconds: req.timeoutSeconds } : {}),
    });
    return { path: res.archive };
  }

  /** The agent keeps no per-migration record yet: the outcome of a lost request is unknown. */
  async lookup(): Promise<CheckpointLookup> {
    return { state: "unknown" };
  }
}

export class AgentTransfer implements TransferPort {
  readonly client: AgentClient;
  readonly locator: AgentLocator;

  constructor(client: AgentClient, locator: AgentLocator) {
    this.client = client;
    this.locator = locator;
  }

  async transfer(req: TransferRequest): Promise<TransferResult> {
    const source = await this.locator.urlFor(req.sourceNode);
    const migration = req.key.split("/")[0] ?? "";
    const destination =
      req.mode === "Direct"
        ? { type: "agent" as const, url: await this.locator.urlFor(req.targetNode), image: req.image }
        : { type: "registry" as const, image: req.image };
    const res = await this.client.send(source, {
      migration,
      namespace: req.namespace,
      pod: req.pod,
      container: req.container,
      archive: req.archivePath,
      destination,
      // A failed send can be retried without a second checkpoint.
      retainArchiveOnFailure: true,
    });
    return { image: res.image, digest: res.digest, bytes: res.size };
  }

  /** The agent deletes archives after a successful send; registry images are kept for now. */
  async cleanup(_artifacts: ArtifactRef[]): Promise<void> {}
}
