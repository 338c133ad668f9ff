// CheckpointPort through the API server's node proxy (POST /api/v1/nodes/{node}/proxy/checkpoint/
// {ns}/{pod}/{container}), for nodes where no ms2m-agent runs. Needs `nodes/proxy` create
// (config/components/node-proxy-fallback). The kubelet keeps no record of a checkpoint request,
// so a lost answer cannot be looked up: lookup() says "unknown" and the phase fails the
// migration rather than checkpointing twice.
import { request } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { Ms2mError, type StatusReason } from "../../common/errors.ts";
import { checkpointArchivePattern, KUBELET_CHECKPOINTS_DIR } from "../../checkpoint/kubelet-archives.ts";
import type {
  CheckpointLookup,
  CheckpointPort,
  CheckpointRequest,
  CheckpointResult,
  CheckpointRoute,
} from "../ports.ts";
import type { AgentLocator } from "./agent.ts";

/** Longest kubelet answer read (it is `{"items":["<path>"]}`). */
const MAX_ANSWER_BYTES = 64 * 1024;

export class NodeProxyCheckpointer implements CheckpointPort {
  private readonly kc: KubeConfig;

  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  async routeFor(): Promise<CheckpointRoute> {
    return "NodeProxy";
  }

  async checkpoint(req: CheckpointRequest): Promise<CheckpointResult> {
    const server = this.kc.getCurrentCluster()?.server;
    if (!server)
      throw new Ms2mError("InternalError", "kubeconfig has no current cluster", { retriable: false });
    const e = encodeURIComponent;
    const url = new URL(
      `${server.replace(/\/$/, "")}/api/v1/nodes/${e(req.node)}/proxy/checkpoint/${e(req.namespace)}/${e(req.pod)}/${e(req.container)}`,
    );
    if (req.timeoutSeconds) url.searchParams.set("timeout", String(req.timeoutSeconds));
    const { status, body } = await this.post(url, ((req.timeoutSeconds ?? 120) + 30) * 1000);
    const where = `checkpoint of ${req.namespace}/${req.pod}/${req.container} through node ${req.node}'s proxy`;
    if (status !== 200) throw answerError(status, body, where);
    let items: unknown;
    try {
      items = (JSON.parse(body) as { items?: unknown }).items;
    } catch {
      throw new Ms2mError("InternalError", `${where}: the kubelet's answer is not JSON`, {
        retriable: false,
      });
    }
    // Exactly one archive, in the kubelet's folder, named for this pod and container.
    const path = Array.isArray(items) && items.length === 1 ? items[0] : undefined;
    const name = typeof path === "string" ? path.slice(KUBELET_CHECKPOINTS_DIR.length + 1) : "";
    if (
      typeof path !== "string" ||
      !path.startsWith(`${KUBELET_CHECKPOINTS_DIR}/`) ||
      !checkpointArchivePattern(req.namespace, req.pod, req.container).test(name)
    ) {
      throw new Ms2mError("InternalError", `${where}: unexpected answer ${body.slice(0, 200)}`, {
        retriable: false,
      });
    }
    return { path };
  }

  /** The kubelet keeps no record: a request whose answer was lost has an unknown outcome. */
  async lookup(): Promise<CheckpointLookup> {
    return { state: "unknown" };
  }

  private async post(url: URL, timeoutMs: number): Promise<{ status: number; body: string }> {
    const opts: Parameters<typeof request>[1] = {
      method: "POST",
      hostname: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port || 443,
      path: `${url.pathname}${url.search}`,
      headers: { accept: "application/json" },
      timeout: timeoutMs,
    };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const r = request(opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            res.destroy();
            reject(new Ms2mError("InternalError", "kubelet answer too large", { retriable: false }));
          } else chunks.push(c);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on("error", (err) => reject(unknownOutcome(err)));
      });
      r.on("timeout", () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      r.on("error", (err) => reject(unknownOutcome(err)));
      r.end();
    });
  }
}

/** Connection lost or timed out: the kubelet may or may not have checkpointed (retried via lookup). */
function unknownOutcome(err: Error): Ms2mError {
  return new Ms2mError("ServiceUnavailable", `checkpoint request through the node proxy: ${err.message}`, {
    cause: err,
  });
}

/**
 * The kubelet's and the API server's answers (FIELD-NOTES: 401, 404 gate off or pod/container
 * unknown, 500 runtime failure). Definite refusals are not retriable; 429 and 5xx from the
 * proxy itself (kubelet unreachable) leave the outcome unknown.
 */
function answerError(status: number, body: string, where: string): Ms2mError {
  const detail = body.slice(0, 300).trim();
  const definite: Record<number, [StatusReason, string]> = {
    401: ["Unauthorized", "the API server or kubelet refused the controller's credentials"],
    403: [
      "Forbidden",
      "the controller may not use nodes/proxy (add config/components/node-proxy-fallback, or run the ms2m-agent on this node)",
    ],
    404: [
      "NotFound",
      "the kubelet does not know this pod/container or the ContainerCheckpoint feature is off",
    ],
    500: ["InternalError", "the container runtime failed to checkpoint (CRIU support enabled?)"],
  };
  const known = definite[status];
  if (known) return new Ms2mError(known[0], `${where}: ${known[1]}: ${detail}`, { retriable: false });
  if (status === 429) return new Ms2mError("TooManyRequests", `${where}: ${detail}`);
  return new Ms2mError("ServiceUnavailable", `${where}: HTTP ${status}: ${detail}`);
}

/**
 * Per node: through the node's agent when a ready one runs there (least privilege, recorded
 * outcomes), otherwise through the API server's node proxy. The route taken is recorded in the
 * migration's status with the intent, so a restarted controller looks up where it asked.
 */
export class RoutingCheckpointer implements CheckpointPort {
  private readonly agent: CheckpointPort;
  private readonly proxy: CheckpointPort;
  private readonly locator: Pick<AgentLocator, "urlFor">;

  constructor(agent: CheckpointPort, proxy: CheckpointPort, locator: Pick<AgentLocator, "urlFor">) {
    this.agent = agent;
    this.proxy = proxy;
    this.locator = locator;
  }

  async routeFor(node: string): Promise<CheckpointRoute> {
    try {
      await this.locator.urlFor(node);
      return "Agent";
    } catch (err) {
      if (err instanceof Ms2mError && err.reason === "ServiceUnavailable") return "NodeProxy";
      throw err;
    }
  }

  checkpoint(req: CheckpointRequest): Promise<CheckpointResult> {
    return (req.via === "NodeProxy" ? this.proxy : this.agent).checkpoint(req);
  }

  lookup(req: CheckpointRequest): Promise<CheckpointLookup> {
    return (req.via === "NodeProxy" ? this.proxy : this.agent).lookup(req);
  }
}
