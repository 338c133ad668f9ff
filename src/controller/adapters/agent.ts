// CheckpointPort and TransferPort over the ms2m-agent DaemonSet (HTTPS 9443 on every node).
// The agent on a node is found by listing agent pods with a field selector on the node name:
// Direct transfers go to the TARGET node's agent, never to a Service.
import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import { Ms2mError, describeError } from "../../common/errors.ts";
import { kubeCall } from "../../kube/errors.ts";
import type { AgentClient } from "../../transfer/index.ts";
import { KUBELET_CHECKPOINTS_DIR } from "../../checkpoint/kubelet-archives.ts";
import type {
  ArtifactRef,
  CheckpointLookup,
  CheckpointPort,
  CheckpointRequest,
  CheckpointResult,
  CleanupReport,
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
  private readonly rest: KubeRest;
  readonly opts: AgentLocatorOptions;

  constructor(kc: KubeConfig, opts: AgentLocatorOptions) {
    this.rest = new KubeRest(kc);
    this.opts = opts;
  }

  async urlFor(node: string): Promise<string> {
    const { url } = await this.find(node);
    if (!url) throw new Ms2mError("ServiceUnavailable", `no ready ms2m-agent on node ${node}`);
    return url;
  }

  /** The URL of a Ready agent on the node, and how many agent pods run there at all. */
  async find(node: string): Promise<{ url?: string; pods: number }> {
    const pods = await kubeCall(() =>
      this.rest.list<V1Pod>(resourcePath({ version: "v1", plural: "pods", namespace: this.opts.namespace }), {
        labelSelector: this.opts.labelSelector,
        fieldSelector: `spec.nodeName=${node}`,
      }),
    );
    const ready = pods.items.find(
      (p) =>
        p.status?.podIP && (p.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    );
    const ip = ready?.status?.podIP;
    if (!ip) return { pods: pods.items.length };
    return { url: `https://${ip.includes(":") ? `[${ip}]` : ip}:${this.opts.port}`, pods: pods.items.length };
  }
}

/** Migration and container of an idempotency key (`<migration uid>/<container>`, see checkpointKey). */
export function splitKey(key: string): { migration: string; container: string } {
  const slash = key.indexOf("/");
  if (slash <= 0) throw new Ms2mError("BadRequest", `invalid checkpoint key ${key}`, { retriable: false });
  return { migration: key.slice(0, slash), container: key.slice(slash + 1) };
}

/**
 * Checkpoints through the node's agent with the migration key, so the agent records the
 * outcome: a repeated request returns the first result, and lookup() tells a controller that
 * lost an answer whether the checkpoint happened.
 */
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
      migration: splitKey(req.key).migration,
      namespace: req.namespace,
      pod: req.pod,
      container: req.container,
      ...(req.timeoutSeconds ? { timeoutSeconds: req.timeoutSeconds } : {}),
      ...(req.workload ? { workload: req.workload } : {}),
    });
    return {
      path: res.archive,
      ...(res.digest ? { digest: res.digest } : {}),
      ...(res.size !== undefined ? { bytes: res.size } : {}),
    };
  }

  /**
   * Asks the source node's agent what it recorded for the key: done (archive, digest, size) or
   * absent. A checkpoint still in progress, and an agent that cannot be reached, are retriable
   * errors: the phase retries with backoff until its deadline (then fails with a timeout), so
   * the outcome is never guessed.
   */
  async lookup(req: CheckpointRequest): Promise<CheckpointLookup> {
    const { migration, container } = splitKey(req.key);
    const url = await this.locator.urlFor(req.node);
    const rec = await this.client.lookupCheckpoint(url, migration, container);
    if (!rec) return { state: "absent" };
    if (rec.state !== "Done" || !rec.archive) {
      throw new Ms2mError("Conflict", `checkpoint of ${container} on ${req.node} is still in progress`);
    }
    if (rec.namespace !== req.namespace || rec.pod !== req.pod) {
      throw new Ms2mError("Conflict", `agent record for ${req.key} names another pod`, { retriable: false });
    }
    return {
      state: "done",
      result: {
        path: rec.archive,
        ...(rec.digest ? { digest: rec.digest } : {}),
        ...(rec.size !== undefined ? { bytes: rec.size } : {}),
      },
    };
  }
}

export class AgentTransfer implements TransferPort {
  readonly client: AgentClient;
  readonly locator: AgentLocator;

  constructor(client: AgentClient, locator: AgentLocator) {
    this.client = client;
    this.locator = locator;
  }

  /** Idempotent: the source agent sends a recorded checkpoint once per destination. */
  async transfer(req: TransferRequest): Promise<TransferResult> {
    const source = await this.locator.urlFor(req.sourceNode);
    const { migration } = splitKey(req.key);
    const destination =
      req.mode === "Direct"
        ? { type: "agent" as const, url: await this.locator.urlFor(req.targetNode), image: req.image }
        : { type: "registry" as const, image: req.image };
    const encrypted = req.mode === "Registry" && req.encryption !== undefined;
    const res = await this.client.send(source, {
      migration,
      namespace: req.namespace,
      pod: req.pod,
      container: req.container,
      archive: req.archivePath,
      destination,
      // A failed send can be retried without a second checkpoint.
      retainArchiveOnFailure: true,
      ...(encrypted ? { encryption: { recipients: [req.encryption!.publicKey] } } : {}),
      ...(req.workload ? { workload: req.workload } : {}),
    });
    return this.decryptOnTarget(req, { image: res.image, digest: res.digest, bytes: res.size });
  }

  /**
   * Registry mode with encryption: the registry holds only ciphertext, which the target node's
   * runtime cannot pull into a restorable image. The target node's agent pulls it, decrypts it
   * with the private key (handed over TLS, in memory only) and loads it under the registry name,
   * so the target pod's kubelet finds it present (IfNotPresent) and never pulls. Idempotent (a
   * repeated pull loads the same image again). Without encryption: nothing to do.
   */
  async decryptOnTarget(req: TransferRequest, sent: TransferResult): Promise<TransferResult> {
    if (req.mode !== "Registry" || !req.encryption) return sent;
    const target = await this.locator.urlFor(req.targetNode);
    const got = await this.client.pull(target, {
      migration: splitKey(req.key).migration,
      source: sent.image,
      image: sent.image,
      ...(sent.digest ? { expectedDigest: sent.digest } : {}),
      decryption: { privateKeys: [req.encryption.privateKey] },
      ...(req.workload ? { workload: req.workload } : {}),
    });
    return { image: sent.image, digest: got.digest, bytes: got.size };
  }

  /**
   * Releases the migration on every agent that may hold something of it: the source agents
   * delete their records, archives and the registry images their sends pushed; the target
   * agents delete the checkpoint images they loaded into their node's store (kept when the
   * migration completed: the restored pod runs from them, `keepTargetImage`). A registry or
   * store that refuses deletes is a warning. An unreachable agent throws after the others were
   * released (the caller reports it; the agent's expiry sweep removes the leftovers).
   */
  async cleanup(artifacts: ArtifactRef[]): Promise<CleanupReport> {
    const targets = new Map<string, { node: string; migration: string; keep: boolean }>();
    const add = (node: string, migration: string, keep: boolean) => {
      const k = `${node} ${migration}`;
      targets.set(k, { node, migration, keep: keep || (targets.get(k)?.keep ?? false) });
    };
    const warnings: string[] = [];
    for (const a of artifacts) {
      if (!a.key || !a.sourceNode) continue;
      // Only a cleanup Job can look for it (MS2M_TRANSFER_RUNNER=agent starts none): said, not dropped.
      if (a.archiveWindow)
        warnings.push(
          `the archive a lost node-proxy checkpoint of ${a.namespace}/${a.pod} container ${a.container} may have left on ${a.sourceNode} (kubelet time ${a.archiveWindow.from} to ${a.archiveWindow.to}) is not looked for: MS2M_TRANSFER_RUNNER=agent starts no cleanup Job; remove it from ${KUBELET_CHECKPOINTS_DIR} on the node`,
        );
      const { migration } = splitKey(a.key);
      add(a.sourceNode, migration, false);
      if (a.targetNode) add(a.targetNode, migration, a.keepTargetImage === true);
    }
    const errors: string[] = [];
    for (const { node, migration, keep } of targets.values()) {
      try {
        const url = await this.locator.urlFor(node);
        const res = await this.client.releaseCheckpoints(url, migration, undefined, {
          keepLoadedImages: keep,
        });
        for (const img of res.registryImages) {
          if (!img.deleted)
            warnings.push(`registry image ${img.image} not deleted: ${img.message ?? "refused"}`);
        }
        for (const img of res.loadedImages ?? []) {
          if (!img.deleted && !keep)
            warnings.push(`image ${img.image} on ${node} not deleted: ${img.message ?? "refused"}`);
        }
      } catch (err) {
        errors.push(`release on ${node}: ${describeError(err)}`);
      }
    }
    if (errors.length > 0) throw new Ms2mError("ServiceUnavailable", errors.join("; "));
    return { warnings };
  }
}
