// The controller's client for ms2m-agents. Every call goes to one agent *pod* (its pod IP, so
// to the intended node), over TLS verified with the operator's agent CA, with a projected
// ServiceAccount token (audience "ms2m-agent"). Failures are Ms2mErrors carrying the agent's
// Kubernetes Status reason (e.g. TooManyRequests → retry later; Forbidden → RBAC problem).
import { Agent, request, type Dispatcher } from "undici";
import { Ms2mError } from "../common/errors.ts";
import { readBounded, statusError } from "../checkpoint/direct.ts";
import { CONNECT_TIMEOUT_MS, DEFAULT_PROGRESS_TIMEOUT_MS } from "../checkpoint/progress.ts";
import {
  checkpointInventorySchema,
  runtimeReportSchema,
  type CheckpointInventory,
  type AgentCheckpointRequest,
  type BaseImageRequest,
  type BaseImageResponse,
  type CheckpointRecord,
  type CheckpointResponse,
  type PullRequest,
  type PullResponse,
  type ReleaseResponse,
  type RuntimeName,
  type RuntimeReport,
  type SendRequest,
  type SendResponse,
} from "./types.ts";

export type * from "./types.ts";

/**
 * The name agent serving certificates are issued for (the operator's Secret): callers reach
 * agents by pod IP and verify this name instead (`servername`).
 */
export const AGENT_SERVER_NAME = "ms2m-agent";

export interface AgentClientOptions {
  /** PEM of the CA(s) that sign agent serving certificates (`[]`: trust nothing yet). */
  ca: string | Buffer | (string | Buffer)[];
  /** Returns the bearer token (re-read per call: projected tokens rotate). */
  token: () => string | Promise<string>;
  /** Per-call timeout (default 15 minutes: a send includes transfer and load). */
  timeoutMs?: number;
  /**
   * Dead agents: no byte from the agent for this long ends a call (default 15 s). Agents send
   * `102 Processing` every 2 s while they work, which counts; a killed, vanished or frozen agent
   * is noticed within this time instead of at the end of `timeoutMs`.
   */
  progressTimeoutMs?: number;
  /** Expected server name in agent certificates when calling by IP (default: the IP/host itself). */
  servername?: string;
}

export class AgentClient {
  private dispatcher: Dispatcher;
  private readonly options: AgentClientOptions;
  private readonly token: () => string | Promise<string>;
  private readonly timeoutMs: number;

  constructor(options: AgentClientOptions) {
    this.options = options;
    this.dispatcher = this.makeDispatcher(options.ca);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 15 * 60_000;
  }

  private makeDispatcher(ca: AgentClientOptions["ca"]): Dispatcher {
    const progress = this.options.progressTimeoutMs ?? DEFAULT_PROGRESS_TIMEOUT_MS;
    return new Agent({
      connect: {
        ca,
        timeout: CONNECT_TIMEOUT_MS,
        ...(this.options.servername ? { servername: this.options.servername } : {}),
      },
      // Refreshed by every `102 Processing` the agent sends while it works.
      headersTimeout: progress,
      bodyTimeout: progress,
    });
  }

  /** Trust a new CA bundle (rotation): new calls use it; calls in flight finish on the old one. */
  updateCa(ca: AgentClientOptions["ca"]): void {
    const old = this.dispatcher;
    this.dispatcher = this.makeDispatcher(ca);
    void old.close().catch(() => undefined);
  }

  /** Source agent: checkpoint a container through the local kubelet. */
  checkpoint(
    agentUrl: string,
    req: AgentCheckpointRequest,
    signal?: AbortSignal,
  ): Promise<CheckpointResponse> {
    return this.post(agentUrl, "/v1/checkpoint", req, signal);
  }

  /**
   * Source agent: what it recorded for a checkpoint with this migration key (`Pending` while
   * the kubelet works, `Done` with archive, digest and size), or undefined when it has no record.
   */
  async lookupCheckpoint(
    agentUrl: string,
    migration: string,
    container: string,
    signal?: AbortSignal,
  ): Promise<CheckpointRecord | undefined> {
    try {
      return await this.call<CheckpointRecord>(
        "GET",
        agentUrl,
        `/v1/checkpoints/${encodeURIComponent(migration)}/${encodeURIComponent(container)}`,
        undefined,
        signal,
      );
    } catch (err) {
      if (err instanceof Ms2mError && err.reason === "NotFound") return undefined;
      throw err;
    }
  }

  /**
   * The migration is over: the source agent deletes its checkpoint records, archives and the
   * registry images its sends pushed; the target agent deletes the checkpoint images it loaded
   * into its node's store, unless `keepLoadedImages` (a completed migration's pod runs from
   * them). Idempotent.
   */
  releaseCheckpoints(
    agentUrl: string,
    migration: string,
    signal?: AbortSignal,
    options: { keepLoadedImages?: boolean } = {},
  ): Promise<ReleaseResponse> {
    const query = options.keepLoadedImages ? "?keepLoadedImages=true" : "";
    return this.call(
      "DELETE",
      agentUrl,
      `/v1/checkpoints/${encodeURIComponent(migration)}${query}`,
      undefined,
      signal,
    );
  }

  /**
   * Every migration the agent holds something of (records, archives, pushed and loaded images),
   * for the controller's lifecycle sweep. A short timeout: it reads only the agent's records.
   */
  async inventory(agentUrl: string, signal?: AbortSignal, timeoutMs = 30_000): Promise<CheckpointInventory> {
    const raw = await this.call<unknown>("GET", agentUrl, "/v1/checkpoints", undefined, signal, timeoutMs);
    const parsed = checkpointInventorySchema.safeParse(raw);
    if (!parsed.success)
      throw new Ms2mError("InternalError", `agent ${new URL(agentUrl).host} answered an invalid inventory`, {
        retriable: false,
      });
    return parsed.data;
  }

  /** Source agent: send the archive to the target agent (direct) or push it to a registry. */
  send(agentUrl: string, req: SendRequest, signal?: AbortSignal): Promise<SendResponse> {
    return this.post(agentUrl, "/v1/send", req, signal);
  }

  /** Target agent: make a base image (by digest) present in its node's containers-storage. */
  ensureImage(agentUrl: string, req: BaseImageRequest, signal?: AbortSignal): Promise<BaseImageResponse> {
    return this.post(agentUrl, "/v1/images", req, signal);
  }

  /** Target agent: pull a checkpoint image from the registry into its containers-storage. */
  pull(agentUrl: string, req: PullRequest, signal?: AbortSignal): Promise<PullResponse> {
    return this.post(agentUrl, "/v1/pull", req, signal);
  }

  /**
   * What the node's container runtime is configured to do about checkpoint and restore (read
   * from its configuration files by the agent). `runtime`: the one the node reports; absent, the
   * agent detects it. A short timeout: it is a preflight, not a transfer.
   */
  async runtime(
    agentUrl: string,
    runtime?: RuntimeName,
    signal?: AbortSignal,
    timeoutMs = 10_000,
  ): Promise<RuntimeReport> {
    const query = runtime && runtime !== "unknown" ? `?runtime=${encodeURIComponent(runtime)}` : "";
    const raw = await this.call<unknown>(
      "GET",
      agentUrl,
      `/v1/runtime${query}`,
      undefined,
      signal,
      timeoutMs,
    );
    const parsed = runtimeReportSchema.safeParse(raw);
    if (!parsed.success) {
      throw new Ms2mError(
        "InternalError",
        `agent ${new URL(agentUrl).host} answered an invalid runtime report`,
        {
          retriable: false,
        },
      );
    }
    return parsed.data;
  }

  /** Readiness of an agent (no authentication). */
  async ready(agentUrl: string, signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await request(new URL("/readyz", agentUrl), {
        dispatcher: this.dispatcher,
        signal: signal ?? AbortSignal.timeout(5000),
      });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** A call that ended without an answer: why, naming the agent. */
  private lost(base: URL, err: unknown, timedOut: boolean): Ms2mError {
    if (err instanceof Ms2mError) return err;
    const code = (err as { code?: string }).code ?? "";
    const progress = (this.options.progressTimeoutMs ?? DEFAULT_PROGRESS_TIMEOUT_MS) / 1000;
    const why = timedOut
      ? `no answer within ${this.timeoutMs / 1000} s`
      : code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
        ? `stopped responding: no progress for ${progress} s`
        : code === "UND_ERR_CONNECT_TIMEOUT"
          ? `unreachable: no connection within ${CONNECT_TIMEOUT_MS / 1000} s`
          : `unreachable: ${(err as Error).message}`;
    return new Ms2mError(timedOut ? "Timeout" : "ServiceUnavailable", `agent ${base.host} ${why}`, {
      cause: err,
    });
  }

  private post<T>(agentUrl: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.call("POST", agentUrl, path, body, signal);
  }

  private async call<T>(
    method: "GET" | "POST" | "DELETE",
    agentUrl: string,
    path: string,
    body: unknown,
    signal?: AbortSignal,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    const base = new URL(agentUrl);
    if (base.protocol !== "https:") throw new Ms2mError("BadRequest", "agent URL must be https");
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(new URL(path, base), {
        method,
        headers: {
          authorization: `Bearer ${await this.token()}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        dispatcher: this.dispatcher,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      throw this.lost(base, err, timeout.aborted);
    }
    let text: string;
    try {
      text = await readBounded(res.body as AsyncIterable<Buffer>, 256 * 1024);
    } catch (err) {
      throw this.lost(base, err, timeout.aborted);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) throw statusError(res.statusCode, text);
    return JSON.parse(text) as T;
  }
}
